// The container image's runtime package list (README "Container image" and the Dockerfile's
// runtime stage) matches what the binary links: each shared library the binary NEEDs comes from
// a listed package or from the debian:12-slim base.
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"

namespace ticketflow {
namespace {

using testing::runCommand;

std::set<std::string> words(const std::string& s) {
  std::set<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

TEST(ContainerImage, RuntimePackagesMatchWhatTheBinaryLinks) {
#ifdef TICKETFLOW_SANITIZED
  GTEST_SKIP() << "a sanitizer build links libasan/libubsan and more of Poco; the image holds the release binary";
#endif
  // Packages debian:12-slim already has (priority required, or needed by apt itself).
  const std::set<std::string> base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"};
  const auto needed =
      runCommand("readelf -d " + testing::binaryPath() + " | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'");
  ASSERT_EQ(needed.exit_code, 0) << needed.output;
  const auto resolved = runCommand("ldd " + testing::binaryPath());
  std::set<std::string> linked;
  for (const auto& lib : words(needed.output)) {
    std::smatch m;
    const std::regex line("\\s" + std::regex_replace(lib, std::regex(R"([.+])"), R"(\$&)") + R"( => (\S+))");
    ASSERT_TRUE(std::regex_search(resolved.output, m, line)) << lib << " not resolved by ldd";
    const std::string path = m[1];
    auto owner = runCommand("(dpkg -S " + path + " || dpkg -S $(readlink -f " + path + ") || dpkg -S /usr" + path +
                            ") 2>/dev/null | head -1");
    ASSERT_EQ(owner.exit_code, 0) << path << ": " << owner.output;
    const std::string package = owner.output.substr(0, owner.output.find(':'));
    if (!base.count(package)) linked.insert(package);
  }

  const std::string readme = testing::readFile(testing::sourceDir() + "/README.md");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(readme, m, std::regex("Runtime packages[^`]*`([^`]+)`"))) << "README lacks the list";
  std::set<std::string> listed = words(m[1]);
  EXPECT_TRUE(listed.erase("ca-certificates")) << "TLS to providers needs ca-certificates";
  EXPECT_TRUE(listed.erase("redis-server")) << "`IMAGE demo` runs a private redis-server";
  EXPECT_EQ(listed, linked);

  const std::string dockerfile = testing::readFile(testing::sourceDir() + "/Dockerfile");
  const std::string runtime_stage = dockerfile.substr(dockerfile.find("FROM debian:12-slim"));
  for (const auto& p : words(m[1]))
    EXPECT_NE(runtime_stage.find(" " + p), std::string::npos) << p << " missing from the Dockerfile";
  EXPECT_NE(runtime_stage.find("USER 10001"), std::string::npos);
}

TEST(ContainerImage, OneVersionNamesTheBuildTheImageAndTheChartsDefaultTag) {
  std::smatch m;
  const std::string cmake = testing::readFile(testing::sourceDir() + "/CMakeLists.txt");
  ASSERT_TRUE(std::regex_search(cmake, m, std::regex(R"(project\(ticketflow VERSION ([0-9.]+))")));
  const std::string version = m[1];
  const std::string chart = testing::readFile(testing::sourceDir() + "/helm/ticketflow/Chart.yaml");
  ASSERT_TRUE(std::regex_search(chart, m, std::regex(R"re(appVersion: "([^"]+)")re")));
  EXPECT_EQ(m[1], version) << "the chart deploys image tag = appVersion; scripts/image tags the CMake version";
  const std::string dockerfile = testing::readFile(testing::sourceDir() + "/Dockerfile");
  ASSERT_TRUE(std::regex_search(dockerfile, m, std::regex(R"re(org\.opencontainers\.image\.version="([^"]+)")re")));
  EXPECT_EQ(m[1], version);
}

}  // namespace
}  // namespace ticketflow
