# One helper per kind of target: our code gets the strict warnings and the sanitizer flags,
# third-party code never sees them.

set(TICKETFLOW_WARNINGS -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual)

set(TICKETFLOW_SANITIZER_FLAGS "")
set(TICKETFLOW_SANITIZER_COMPILE_ONLY "")
if(TICKETFLOW_SANITIZE OR TICKETFLOW_TSAN)
  # GCC 12's instrumentation makes -Wmaybe-uninitialized fire inside libstdc++ (std::regex,
  # std::function): false positives that only appear in sanitizer builds.
  set(TICKETFLOW_SANITIZER_COMPILE_ONLY -Wno-maybe-uninitialized)
endif()
if(TICKETFLOW_FUZZ)
  # Coverage for libFuzzer in every object of ours; the fuzz binaries add the driver itself.
  set(TICKETFLOW_SANITIZER_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                                 -fno-omit-frame-pointer)
elseif(TICKETFLOW_SANITIZE)
  set(TICKETFLOW_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                                 -fno-omit-frame-pointer)
elseif(TICKETFLOW_TSAN)
  set(TICKETFLOW_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()

function(ticketflow_apply_flags target)
  target_compile_options(${target} PRIVATE ${TICKETFLOW_WARNINGS} ${TICKETFLOW_SANITIZER_FLAGS}
                                           ${TICKETFLOW_SANITIZER_COMPILE_ONLY})
  target_link_options(${target} PRIVATE ${TICKETFLOW_SANITIZER_FLAGS})
endfunction()

function(ticketflow_library name)
  add_library(${name} STATIC ${ARGN})
  ticketflow_apply_flags(${name})
  # Sanitizer runtimes must reach every binary that links the library.
  target_link_options(${name} INTERFACE ${TICKETFLOW_SANITIZER_FLAGS})
endfunction()

# Under TSan every executable carries the C11-threads forwarding of common/src/kafka/
# tsan_c11_threads.cpp (it must be in the executable to win over glibc for librdkafka's calls).
function(ticketflow_executable_extras target)
  if(TICKETFLOW_TSAN)
    target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/common/src/kafka/tsan_c11_threads.cpp)
  endif()
endfunction()

function(ticketflow_executable name)
  add_executable(${name} ${ARGN})
  ticketflow_apply_flags(${name})
  ticketflow_executable_extras(${name})
endfunction()

# ticketflow_test(NAME LABEL SOURCES... [LIBS ...]): a GoogleTest binary registered with ctest;
# LABEL is unit, integration or chaos. Chaos tests run alone (RUN_SERIAL): each starts up to a
# dozen processes (roles, redis-servers, sentinels) and measures how the pipeline rides the fault
# it injects; run beside another on two cores, CPU starvation becomes a second, unplanned fault
# (a role misses its group session and loses its partitions mid-call).
function(ticketflow_test name label)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  ticketflow_apply_flags(${name})
  ticketflow_executable_extras(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  set(serial FALSE)
  if(label STREQUAL "chaos")
    set(serial TRUE)
  endif()
  gtest_discover_tests(${name} PROPERTIES LABELS ${label} RUN_SERIAL ${serial} DISCOVERY_TIMEOUT 60)
endfunction()

# Embeds text files into a generated C++ source so the binary runs with its defaults anywhere.
function(ticketflow_embed_files out_var)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/embedded_resources.cpp")
  string(REPLACE ";" "|" files_arg "${ARGN}")
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DROOT=${PROJECT_SOURCE_DIR} "-DFILES=${files_arg}"
            -P ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
            ${ARGN}
    COMMENT "Embedding schemas and default configuration"
    VERBATIM)
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()
