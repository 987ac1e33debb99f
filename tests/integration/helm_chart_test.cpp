// The Helm chart, rendered by a real helm v4 binary (installed by scripts/bootstrap --test-tools)
// with the default values and four other value sets; assertions on the rendered objects.
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "ticketflow/config/config.hpp"

namespace ticketflow {
namespace {

using nlohmann::json;
using testing::runCommand;
using testing::sourceDir;

std::string helm() {
  return sourceDir() + "/.tools/bin/helm";
}
std::string chart() {
  return sourceDir() + "/helm/ticketflow";
}

std::vector<json> render(const std::string& values_file, const std::string& extra = "") {
  const std::string values = values_file.empty() ? "" : " -f " + sourceDir() + "/tests/data/helm/" + values_file;
  const auto out = runCommand(helm() + " template tf " + chart() + values + " " + extra + " 2>&1", 60);
  EXPECT_EQ(out.exit_code, 0) << out.output;
  return parseYamlDocuments(out.output, "helm template");
}

std::vector<json> ofKind(const std::vector<json>& docs, const std::string& kind) {
  std::vector<json> out;
  for (const auto& d : docs)
    if (d.is_object() && d.value("kind", "") == kind) out.push_back(d);
  return out;
}

std::map<std::string, json> byName(const std::vector<json>& docs) {
  std::map<std::string, json> out;
  for (const auto& d : docs) out[d["metadata"]["name"].get<std::string>()] = d;
  return out;
}

class HelmChart : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(helm()))
      FAIL() << "helm is not installed: run scripts/bootstrap --test-tools (./dev test does)";
  }
};

TEST_F(HelmChart, LintsStrictlyWithEveryValueSet) {
  for (const std::string values :
       {"", "keda.yaml", "custom-tiers.yaml", "external-secrets.yaml", "redis-tls-sentinel.yaml"}) {
    const std::string flag = values.empty() ? "" : " -f " + sourceDir() + "/tests/data/helm/" + values;
    const auto out = runCommand(helm() + " lint --strict " + chart() + flag, 60);
    EXPECT_EQ(out.exit_code, 0) << values << ": " << out.output;
  }
}

TEST_F(HelmChart, DefaultValuesGiveOneHardenedDeploymentPerRole) {
  const auto docs = render("");
  const auto deployments = byName(ofKind(docs, "Deployment"));
  for (const std::string role : {"intake", "tier-fast", "tier-balanced", "tier-frontier", "results", "shadow"})
    ASSERT_TRUE(deployments.count("tf-ticketflow-" + role)) << role;
  EXPECT_EQ(deployments.size(), 6u);
  EXPECT_EQ(deployments.at("tf-ticketflow-shadow")["spec"]["template"]["spec"]["containers"][0]["args"],
            json::parse(R"(["run","shadow","--config","/etc/ticketflow/config/ticketflow.yaml"])"));
  const auto& fast = deployments.at("tf-ticketflow-tier-fast");
  const json& pod = fast["spec"]["template"]["spec"];
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["args"],
            json::parse(R"(["run","tier","--tier","fast","--config","/etc/ticketflow/config/ticketflow.yaml"])"));
  EXPECT_EQ(c["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/healthz");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/readyz");
  EXPECT_TRUE(c["resources"].contains("limits"));
  // The grace period outlasts the drain deadline (25 s in the default values).
  EXPECT_GT(pod["terminationGracePeriodSeconds"].get<int>(), 25);
  EXPECT_EQ(ofKind(docs, "HorizontalPodAutoscaler").size(), 6u);
  EXPECT_EQ(ofKind(docs, "PodDisruptionBudget").size(), 6u);
  EXPECT_TRUE(ofKind(docs, "ScaledObject").empty());
  for (const auto& hpa : ofKind(docs, "HorizontalPodAutoscaler")) EXPECT_LE(hpa["spec"]["maxReplicas"].get<int>(), 8);
}

TEST_F(HelmChart, RenderedConfigurationPassesConfigCheck) {
  for (const std::string values :
       {"", "keda.yaml", "custom-tiers.yaml", "external-secrets.yaml", "redis-tls-sentinel.yaml"}) {
    const auto maps = byName(ofKind(render(values), "ConfigMap"));
    ASSERT_TRUE(maps.count("tf-ticketflow-config")) << values;
    const std::string dir = testing::makeTempDir("helmcfg");
    testing::writeFile(dir + "/ticketflow.yaml", maps.at("tf-ticketflow-config")["data"]["ticketflow.yaml"]);
    const auto out = runCommand(
        "TICKETFLOW_KAFKA_SASL_PASSWORD=x TICKETFLOW_REDIS_PASSWORD=y TICKETFLOW_REDIS_SENTINEL_PASSWORD=z " +
        testing::binaryPath() + " config check " + dir + "/ticketflow.yaml");
    EXPECT_EQ(out.exit_code, 0) << values << ": " << out.output;
    const std::string yaml = maps.at("tf-ticketflow-config")["data"]["ticketflow.yaml"];
    EXPECT_NE(yaml.find(values == "keda.yaml" ? "exactly_once: true" : "exactly_once: false"), std::string::npos)
        << values << ": results.exactlyOnce reaches results.exactly_once";
    std::filesystem::remove_all(dir);
  }
}

TEST_F(HelmChart, KedaScalesEachRoleOnItsOwnTopicAndGroup) {
  const auto docs = render("keda.yaml");
  const auto scaled = byName(ofKind(docs, "ScaledObject"));
  EXPECT_EQ(scaled.size(), 7u) << "feedback.enabled adds the feedback role";
  EXPECT_EQ(scaled.at("tf-ticketflow-shadow")["spec"]["triggers"][0]["metadata"]["topic"], "tickets.shadow");
  EXPECT_EQ(scaled.at("tf-ticketflow-feedback")["spec"]["triggers"][0]["metadata"]["topic"], "tickets.feedback");
  EXPECT_EQ(byName(ofKind(docs, "Deployment"))
                .at("tf-ticketflow-feedback")["spec"]["template"]["spec"]["containers"][0]["args"],
            json::parse(R"(["run","feedback","--config","/etc/ticketflow/config/ticketflow.yaml"])"));
  EXPECT_TRUE(ofKind(docs, "HorizontalPodAutoscaler").empty());
  for (const std::string tier : {"fast", "balanced", "frontier"}) {
    const auto& so = scaled.at("tf-ticketflow-tier-" + tier);
    const json& trigger = so["spec"]["triggers"][0];
    EXPECT_EQ(trigger["type"], "kafka");
    EXPECT_EQ(trigger["metadata"]["topic"], "tickets.tier." + tier);
    EXPECT_EQ(trigger["metadata"]["consumerGroup"], "ticketflow-tier-" + tier);
    EXPECT_EQ(trigger["metadata"]["allowIdleConsumers"], "false");
    EXPECT_EQ(trigger["authenticationRef"]["name"], "tf-ticketflow-kafka");
    EXPECT_LE(so["spec"]["maxReplicaCount"].get<int>(), 12);
    EXPECT_EQ(so["spec"]["scaleTargetRef"]["name"], "tf-ticketflow-tier-" + tier);
  }
  EXPECT_EQ(scaled.at("tf-ticketflow-intake")["spec"]["triggers"][0]["metadata"]["topic"], "tickets.inbound");
  EXPECT_EQ(ofKind(docs, "TriggerAuthentication").size(), 1u);
  EXPECT_EQ(ofKind(docs, "ServiceMonitor").size(), 1u);
  EXPECT_EQ(ofKind(docs, "NetworkPolicy").size(), 1u);
  const auto config =
      byName(ofKind(docs, "ConfigMap")).at("tf-ticketflow-config")["data"]["ticketflow.yaml"].get<std::string>();
  EXPECT_NE(config.find("SASL_SSL"), std::string::npos);
  EXPECT_NE(config.find("${TICKETFLOW_KAFKA_SASL_PASSWORD}"), std::string::npos);
}

TEST_F(HelmChart, CustomTiersGetTheirOwnDeployments) {
  const auto docs = render("custom-tiers.yaml");
  const auto deployments = byName(ofKind(docs, "Deployment"));
  EXPECT_EQ(deployments.size(), 4u) << "shadow.sample 0: no shadow Deployment";
  EXPECT_FALSE(deployments.count("tf-ticketflow-shadow"));
  ASSERT_TRUE(deployments.count("tf-ticketflow-tier-cheap"));
  ASSERT_TRUE(deployments.count("tf-ticketflow-tier-premium"));
  EXPECT_FALSE(deployments.count("tf-ticketflow-tier-fast"));
  EXPECT_EQ(deployments.at("tf-ticketflow-tier-cheap")["spec"]["replicas"], 2);
  EXPECT_EQ(byName(ofKind(docs, "HorizontalPodAutoscaler")).at("tf-ticketflow-tier-premium")["spec"]["maxReplicas"], 3);
}

TEST_F(HelmChart, CredentialsComeOnlyFromExistingSecrets) {
  const auto docs = render("external-secrets.yaml");
  EXPECT_TRUE(ofKind(docs, "Secret").empty());  // the chart creates none of its own here
  for (const auto& d : ofKind(docs, "Deployment")) {
    std::map<std::string, std::string> secret_of;
    for (const auto& env : d["spec"]["template"]["spec"]["containers"][0]["env"]) {
      const std::string name = env["name"];
      if (name.rfind("TICKETFLOW_KEY_", 0) == 0 || name.find("PASSWORD") != std::string::npos) {
        EXPECT_FALSE(env.contains("value")) << name << " carries a literal value";
        secret_of[name] = env["valueFrom"]["secretKeyRef"]["name"];
      }
    }
    EXPECT_EQ(secret_of["TICKETFLOW_KEY_OPENAI"], "es-openai");
    EXPECT_EQ(secret_of["TICKETFLOW_KEY_ANTHROPIC"], "es-anthropic");
    EXPECT_EQ(secret_of["TICKETFLOW_REDIS_PASSWORD"], "es-redis");
    EXPECT_EQ(secret_of["TICKETFLOW_KAFKA_SASL_PASSWORD"], "es-kafka");
    // Sink credentials reach the result writers only.
    std::map<std::string, std::string> sink_secret;
    for (const auto& env : d["spec"]["template"]["spec"]["containers"][0]["env"]) {
      const std::string name = env["name"];
      if (name.rfind("TICKETFLOW_SINK_", 0) != 0) continue;
      EXPECT_FALSE(env.contains("value")) << name << " carries a literal value";
      sink_secret[name] = env["valueFrom"]["secretKeyRef"]["name"];
    }
    if (d["metadata"]["name"] == "tf-ticketflow-results") {
      EXPECT_EQ(sink_secret["TICKETFLOW_SINK_JIRA"], "es-jira");
      EXPECT_EQ(sink_secret["TICKETFLOW_SINK_HELPDESK_HOOK"], "es-webhook");
    } else {
      EXPECT_TRUE(sink_secret.empty()) << d["metadata"]["name"];
    }
  }
  const auto config =
      byName(ofKind(docs, "ConfigMap")).at("tf-ticketflow-config")["data"]["ticketflow.yaml"].get<std::string>();
  EXPECT_NE(config.find("secret_env: TICKETFLOW_SINK_JIRA"), std::string::npos) << config;
  EXPECT_NE(config.find("kind: \"webhook\""), std::string::npos) << config;
}

TEST_F(HelmChart, RedisOverTlsBehindSentinelMountsWhatTheConfigurationNames) {
  const auto docs = render("redis-tls-sentinel.yaml");
  const auto config =
      byName(ofKind(docs, "ConfigMap")).at("tf-ticketflow-config")["data"]["ticketflow.yaml"].get<std::string>();
  for (const std::string expected :
       {"url: \"rediss+sentinel://redis-sentinel-0.redis:26379,",
        "sentinel_password: ${TICKETFLOW_REDIS_SENTINEL_PASSWORD}", "min_replica_acks: 1",
        "ca_file: \"/etc/ticketflow/redis-ca/ca.crt\"", "cert_file: /etc/ticketflow/redis-client/tls.crt",
        "key_file: /etc/ticketflow/redis-client/tls.key", "server_name: \"redis.ticketflow.svc\""})
    EXPECT_NE(config.find(expected), std::string::npos) << expected << " missing from:\n" << config;
  for (const auto& d : ofKind(docs, "Deployment")) {
    const auto& pod = d["spec"]["template"]["spec"];
    std::map<std::string, std::string> mounted;  // volume -> mount path
    for (const auto& m : pod["containers"][0]["volumeMounts"]) mounted[m["name"]] = m["mountPath"];
    std::map<std::string, json> volumes;
    for (const auto& v : pod["volumes"]) volumes[v["name"]] = v;
    EXPECT_EQ(mounted["redis-ca"], "/etc/ticketflow/redis-ca") << d["metadata"]["name"];
    EXPECT_EQ(mounted["redis-client"], "/etc/ticketflow/redis-client");
    EXPECT_EQ(volumes["redis-ca"]["secret"]["secretName"], "redis-ca");
    EXPECT_EQ(volumes["redis-ca"]["secret"]["items"][0]["path"], "ca.crt");
    EXPECT_EQ(volumes["redis-client"]["secret"]["secretName"], "redis-client-cert");
    bool sentinel_password_from_secret = false;
    for (const auto& env : pod["containers"][0]["env"])
      if (env["name"] == "TICKETFLOW_REDIS_SENTINEL_PASSWORD")
        sentinel_password_from_secret = env["valueFrom"]["secretKeyRef"]["key"] == "sentinel-password";
    EXPECT_TRUE(sentinel_password_from_secret) << d["metadata"]["name"];
  }
}

TEST_F(HelmChart, BadValuesFailAtInstallWithAClearMessage) {
  auto out = runCommand(helm() + " template tf " + chart() + " --set kafka.properties.sasl\\\\.password=hunter2", 60);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.output.find("invalid propertyName 'sasl.password'"), std::string::npos) << out.output;
  out = runCommand(helm() + " template tf " + chart() + " --set redis.url=redis://user:pw@redis:6379/0", 60);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.output.find("/redis/url"), std::string::npos) << out.output;
  out = runCommand(helm() + " template tf " + chart() + " --set redis.tls.caSecret.name=redis-ca", 60);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.output.find("redis.url is not rediss://"), std::string::npos) << out.output;
  out = runCommand(helm() + " template tf " + chart() + " --set kafka.partitions=2", 60);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.output.find("exceeds kafka.partitions 2"), std::string::npos) << out.output;
  out = runCommand(helm() + " template tf " + chart() + " --set intake.maxReplicas=eight", 60);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.output.find("/intake/maxReplicas"), std::string::npos) << out.output;
}

}  // namespace
}  // namespace ticketflow
