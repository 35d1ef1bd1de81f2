// The real schema (config.proto): its defaults, the example configs, and the cross-field rules of
// the coordinator and site configs.
#include "common/config/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/config/schema_check.h"
#include "common/log/logging.h"
#include "config_test_schema.pb.h"

namespace fedjoint::common::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kMinimalCoordinator[] = R"(listen: "0.0.0.0:50051"
state_dir: state
tls: {ca_cert: ca.crt, server_cert: server.crt, server_key: server.key}
signing_key: /keys/signing.key
job:
  phases:
    - name: segmentation
      rounds: 10
      model:
        joints:
          - {name: knee, structures: [femur, tibia, patella, fibula]}
)";

constexpr char kMinimalSite[] = R"(name: site-a
state_dir: state
manifest: data/manifest.yaml
)";

// The error message of parsing `yaml` as a T named "c.yaml" ("" when valid).
template <typename T>
std::string Errors(const std::string& yaml) {
  absl::StatusOr<T> config = ParseConfig<T>(yaml, "c.yaml", "/etc/fedjoint");
  return config.ok() ? "" : std::string(config.status().message());
}

// Replaces the first occurrence of `from` in the minimal coordinator config.
std::string Coordinator(const std::string& from, const std::string& to) {
  std::string yaml = kMinimalCoordinator;
  std::size_t at = yaml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) yaml.replace(at, from.size(), to);
  return yaml;
}

TEST(SchemaTest, EveryDefaultParsesAndSatisfiesItsRules) {
  EXPECT_THAT(CheckSchema(v1::CoordinatorConfig::descriptor()), IsEmpty());
  EXPECT_THAT(CheckSchema(v1::SiteConfig::descriptor()), IsEmpty());
  EXPECT_THAT(CheckSchema(config_test::Everything::descriptor()), IsEmpty());
}

TEST(SchemaTest, SchemaMistakesAreFound) {
  EXPECT_THAT(
      CheckSchema(config_test::BrokenSchema::descriptor()),
      ElementsAre("fedjoint.config_test.BrokenSchema.not_a_number: invalid schema default 'abc': "
                  "expected an integer, got 'abc'",
                  "fedjoint.config_test.BrokenSchema.too_big: invalid schema default '5': must "
                  "be <= 3, got 5",
                  "fedjoint.config_test.BrokenSchema.both: both required and default_yaml are "
                  "set; a required key never uses its default",
                  "fedjoint.config_test.BrokenSchema.ranged: min/max/gt apply to numeric fields "
                  "only",
                  "fedjoint.config_test.BrokenSchema.bad_yaml: invalid schema default "
                  "'[unclosed': YAML syntax error: end of sequence flow not found"));
}

// Every YAML file under configs/ must stay valid; the file name says which config it is.
TEST(ExampleConfigsTest, EveryConfigInTheRepositoryIsValid) {
  int checked = 0;
  for (const auto& entry :
       fs::recursive_directory_iterator(fs::path(FEDJOINT_SOURCE_DIR) / "configs")) {
    if (!entry.is_regular_file() || entry.path().extension() != ".yaml") continue;
    std::string name = entry.path().filename().string();
    absl::Status status;
    if (name.find("coordinator") != std::string::npos) {
      status = LoadConfig<v1::CoordinatorConfig>(entry.path()).status();
    } else if (name.find("site") != std::string::npos) {
      status = LoadConfig<v1::SiteConfig>(entry.path()).status();
    } else {
      ADD_FAILURE() << entry.path() << ": name it *coordinator*.yaml or *site*.yaml so this test "
                    << "knows which schema it follows";
      continue;
    }
    EXPECT_TRUE(status.ok()) << status;
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

TEST(ExampleConfigsTest, CoordinatorExampleHasTheDocumentedJob) {
  fs::path file = fs::path(FEDJOINT_SOURCE_DIR) / "configs" / "coordinator.example.yaml";
  absl::StatusOr<v1::CoordinatorConfig> config = LoadConfig<v1::CoordinatorConfig>(file);
  ASSERT_TRUE(config.ok()) << config.status();
  const v1::JobConfig& job = config->job();
  ASSERT_EQ(job.phases_size(), 2);
  EXPECT_EQ(job.phases(0).name(), "shape_prior");
  EXPECT_EQ(job.phases(1).name(), "segmentation");
  for (const v1::PhaseConfig& phase : job.phases()) {
    const auto& joints = phase.model().joints();
    ASSERT_EQ(joints.size(), 3);
    EXPECT_EQ(joints[0].name(), "ankle");
    EXPECT_THAT(joints[0].structures(), ElementsAre("tibia", "talus", "calcaneus"));
    EXPECT_EQ(joints[1].name(), "knee");
    EXPECT_THAT(joints[1].structures(), ElementsAre("femur", "tibia", "patella", "fibula"));
    EXPECT_EQ(joints[2].name(), "shoulder");
    EXPECT_THAT(joints[2].structures(), ElementsAre("humerus", "scapula"));
    ASSERT_EQ(phase.scopes_size(), 3);
    EXPECT_EQ(phase.scopes(0).pattern(), "*norm*");
    EXPECT_EQ(phase.scopes(0).scope(), "site");
  }
  EXPECT_EQ(config->tls().ca_cert(), (file.parent_path() / "pki" / "ca.crt").string());
}

TEST(CoordinatorConfigTest, MinimalConfigGetsEveryDefault) {
  absl::StatusOr<v1::CoordinatorConfig> config =
      ParseConfig<v1::CoordinatorConfig>(kMinimalCoordinator, "c.yaml", "/etc/fedjoint");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->state_dir(), "/etc/fedjoint/state");
  EXPECT_EQ(config->tls().server_key(), "/etc/fedjoint/server.key");
  EXPECT_EQ(config->tls().crl(), "") << "an optional path stays empty";
  EXPECT_EQ(config->signing_key(), "/keys/signing.key");
  // `limits:` and `logging:` were omitted entirely.
  EXPECT_EQ(config->limits().max_message_bytes(), 4194304);
  EXPECT_EQ(config->limits().chunk_bytes(), 1048576);
  EXPECT_EQ(config->limits().max_update_bytes(), 2147483648LL);
  EXPECT_DOUBLE_EQ(config->limits().keepalive_s(), 30);
  EXPECT_EQ(config->logging().level(), "info");
  EXPECT_EQ(config->logging().format(), "human");
  EXPECT_EQ(config->job().min_sites(), 2);
  EXPECT_EQ(config->job().min_updates(), 2);
  EXPECT_DOUBLE_EQ(config->job().round_deadline_s(), 600);
  const v1::PhaseConfig& phase = config->job().phases(0);
  EXPECT_EQ(phase.model().architecture(), "unet_resnet");
  EXPECT_EQ(phase.model().encoder_depth(), 18);
  EXPECT_DOUBLE_EQ(phase.model().width_multiplier(), 0.25);
  ASSERT_EQ(phase.scopes_size(), 3);
  EXPECT_EQ(phase.scopes(1).pattern(), "heads.*");
  EXPECT_EQ(phase.scopes(1).scope(), "domain");
  EXPECT_EQ(phase.scopes(2).pattern(), "*");
  EXPECT_EQ(phase.local().epochs(), 1);
  EXPECT_EQ(phase.local().batch_size(), 8);
  EXPECT_EQ(phase.local().optimizer().name(), "adamw");
  EXPECT_DOUBLE_EQ(phase.local().optimizer().learning_rate(), 0.001);
  EXPECT_DOUBLE_EQ(phase.local().loss().contrastive_temperature(), 0.1);
}

TEST(CoordinatorConfigTest, RealisticMistakesAreAllListed) {
  std::string errors = Errors<v1::CoordinatorConfig>(R"(listen: "0.0.0.0"
state_dir: state
tls:
  ca_cert: ca.crt
  server_crt: x
signing_key: k
limits:
  chunk_bytes: abc
job:
  min_site: 3
  min_updates: 5
  site_fraction: 0
  phases:
    - name: a
      rounds: 0
      model:
        encoder_depth: 20
        joints:
          - name: Knee
            structures: [tibia, tibia]
          - name: ankle
            structures: []
      scopes:
        - {pattern: "*", scope: global}
        - {pattern: "x", scope: nowhere}
    - name: a
      rounds: 1.5
      model: [1]
logging:
  level: verbose
  level: info
)");
  EXPECT_EQ(errors,
            "c.yaml: 20 problems\n"
            "c.yaml:1:9: listen: expected host:port (e.g. 0.0.0.0:50051), got '0.0.0.0'\n"
            "c.yaml:4:3: tls.server_cert: missing required key\n"
            "c.yaml:4:3: tls.server_key: missing required key\n"
            "c.yaml:5:3: tls.server_crt: unknown key (did you mean 'server_cert'?)\n"
            "c.yaml:8:16: limits.chunk_bytes: expected an integer, got 'abc'\n"
            "c.yaml:10:3: job.min_site: unknown key (did you mean 'min_sites'?)\n"
            "c.yaml:11:16: job.min_updates: must be <= job.min_sites (2), got 5: a round could "
            "never collect enough updates\n"
            "c.yaml:12:18: job.site_fraction: must be > 0, got 0\n"
            "c.yaml:15:15: job.phases[0].rounds: must be >= 1, got 0\n"
            "c.yaml:17:24: job.phases[0].model.encoder_depth: must be one of [18, 34, 50], got 20\n"
            "c.yaml:19:19: job.phases[0].model.joints[0].name: must match [a-z][a-z0-9_]* (it "
            "becomes part of parameter names), got 'Knee'\n"
            "c.yaml:20:33: job.phases[0].model.joints[0].structures[1]: duplicate structure "
            "'tibia' in joint 'Knee' (also job.phases[0].model.joints[0].structures[0])\n"
            "c.yaml:22:25: job.phases[0].model.joints[1].structures: must not be empty\n"
            "c.yaml:25:21: job.phases[0].scopes[1].pattern: can never match: "
            "job.phases[0].scopes[0] ('*') matches every parameter first\n"
            "c.yaml:25:33: job.phases[0].scopes[1].scope: must be one of [global, domain, site], "
            "got 'nowhere'\n"
            "c.yaml:26:13: job.phases[1].name: duplicate phase name 'a' (also "
            "job.phases[0].name)\n"
            "c.yaml:27:15: job.phases[1].rounds: expected an integer, got '1.5'\n"
            "c.yaml:28:14: job.phases[1].model: expected a map, got a sequence\n"
            "c.yaml:30:10: logging.level: must be one of [trace, debug, info, warn, error, "
            "critical, off], got 'verbose'\n"
            "c.yaml:31:3: logging.level: duplicate key (first defined at line 30)");
}

TEST(CoordinatorConfigTest, MissingRequiredSections) {
  EXPECT_EQ(Errors<v1::CoordinatorConfig>("listen: \"h:1\"\n"),
            "c.yaml: 4 problems\n"
            "c.yaml:1:1: state_dir: missing required key\n"
            "c.yaml:1:1: tls: missing required key\n"
            "c.yaml:1:1: signing_key: missing required key\n"
            "c.yaml:1:1: job: missing required key");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator("      model:\n", "      modle:\n")),
            "c.yaml: 2 problems\n"
            "c.yaml:7:7: job.phases[0].model: missing required key\n"
            "c.yaml:9:7: job.phases[0].modle: unknown key (did you mean 'model'?)");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator("  phases:\n", "  phases: []\n  old:\n")),
            "c.yaml: 2 problems\n"
            "c.yaml:6:11: job.phases: must not be empty\n"
            "c.yaml:7:3: job.old: unknown key (valid keys: min_sites, min_updates, "
            "round_deadline_s, site_fraction, max_round_retries, phases, id)");
}

TEST(CoordinatorConfigTest, CrossFieldRules) {
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(
                Coordinator("job:\n", "job:\n  min_sites: 3\n  min_updates: 4\n")),
            "c.yaml: 1 problem\n"
            "c.yaml:7:16: job.min_updates: must be <= job.min_sites (3), got 4: a round could "
            "never collect enough updates");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator("\"0.0.0.0:50051\"", "\"[::1:50051\"")),
            "c.yaml: 1 problem\n"
            "c.yaml:1:9: listen: unbalanced '[' in IPv6 address '[::1:50051'");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator("\"0.0.0.0:50051\"", "\"host:99999\"")),
            "c.yaml: 1 problem\n"
            "c.yaml:1:9: listen: port must be a number from 0 to 65535, got '99999'");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(
                Coordinator("job:\n", "limits: {chunk_bytes: 4194304}\njob:\n")),
            "c.yaml: 1 problem\n"
            "c.yaml:5:23: limits.chunk_bytes: must be less than limits.max_message_bytes "
            "(4194304), got 4194304: a chunk and its framing must fit in one message");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator(
                "          - {name: knee",
                "          - {name: shared, structures: [a]}\n          - {name: knee")),
            "c.yaml: 1 problem\n"
            "c.yaml:11:20: job.phases[0].model.joints[0].name: 'shared' is reserved (the "
            "normalization of the shared model variant)");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(
                Coordinator("          - {name: knee",
                            "          - {name: knee, structures: [a]}\n          - {name: knee")),
            "c.yaml: 1 problem\n"
            "c.yaml:12:20: job.phases[0].model.joints[1].name: duplicate joint name 'knee' (also "
            "job.phases[0].model.joints[0].name)");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator("      rounds: 10\n",
                                                      "      rounds: 10\n"
                                                      "      local: {epochs: 0}\n")),
            "c.yaml: 1 problem\n"
            "c.yaml:9:23: job.phases[0].local.epochs: epochs and steps are both 0: set a local "
            "training budget");
}

TEST(CoordinatorConfigTest, ScopeRules) {
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(
                Coordinator("      rounds: 10\n",
                            "      rounds: 10\n"
                            "      scopes:\n"
                            "        - {pattern: '*norm*', scope: site}\n"
                            "        - {pattern: '*norm*', scope: global}\n"
                            "        - {pattern: 'a b', scope: global}\n"
                            "        - {pattern: '*norm*|*bn*', scope: site}\n")),
            "c.yaml: 4 problems\n"
            "c.yaml:10:9: job.phases[0].scopes: must end with a catch-all rule (pattern: '*') so "
            "every parameter has a scope\n"
            "c.yaml:11:21: job.phases[0].scopes[1].pattern: repeats "
            "job.phases[0].scopes[0].pattern '*norm*', so this rule can never match\n"
            "c.yaml:12:21: job.phases[0].scopes[2].pattern: 'a b': character ' ' is not allowed "
            "(tensor names are letters, digits, '_', '-' and '.'; the wildcards are '*' and '?')\n"
            "c.yaml:13:21: job.phases[0].scopes[3].pattern: '*norm*|*bn*': '|' is not part of the "
            "pattern grammar (only '*' and '?' are wildcards); write one rule per alternative");
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(Coordinator("      rounds: 10\n",
                                                      "      rounds: 10\n"
                                                      "      scopes:\n"
                                                      "        - {pattern: '', scope: site}\n"
                                                      "        - {scope: global}\n")),
            "c.yaml: 2 problems\n"
            "c.yaml:10:21: job.phases[0].scopes[0].pattern: must not be empty\n"
            "c.yaml:11:11: job.phases[0].scopes[1].pattern: missing required key");
}

TEST(CoordinatorConfigTest, ConsequencesOfABadValueAreNotReportedTwice) {
  // min_sites is broken: the min_updates <= min_sites rule stays quiet about it.
  EXPECT_EQ(Errors<v1::CoordinatorConfig>(
                Coordinator("job:\n", "job:\n  min_sites: many\n  min_updates: 4\n")),
            "c.yaml: 1 problem\n"
            "c.yaml:6:14: job.min_sites: expected an integer, got 'many'");
}

TEST(SiteConfigTest, MinimalConfigLeavesOptionalSectionsUnset) {
  absl::StatusOr<v1::SiteConfig> config =
      ParseConfig<v1::SiteConfig>(kMinimalSite, "s.yaml", "/srv/site");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->manifest(), "/srv/site/data/manifest.yaml");
  EXPECT_FALSE(config->has_tls()) << "a section with required keys stays unset";
  EXPECT_FALSE(config->has_model());
  EXPECT_TRUE(config->has_training());
  EXPECT_EQ(config->training().epochs(), 1);
  EXPECT_EQ(config->loader_threads(), 2);
  EXPECT_EQ(config->seed(), 1);
}

TEST(SiteConfigTest, CrossFieldRules) {
  std::string yaml = kMinimalSite;
  EXPECT_EQ(Errors<v1::SiteConfig>("name: Site_A\nstate_dir: s\nmanifest: m\n"),
            "c.yaml: 1 problem\n"
            "c.yaml:1:7: name: must be a lower-case DNS label ([a-z0-9][a-z0-9-]{0,62}, the "
            "certificate's common name), got 'Site_A'");
  EXPECT_EQ(Errors<v1::SiteConfig>("name: fedjoint-ca\nstate_dir: s\nmanifest: m\n"),
            "c.yaml: 1 problem\n"
            "c.yaml:1:7: name: the prefix 'fedjoint-' is reserved for the consortium's own "
            "certificates, got 'fedjoint-ca'");
  EXPECT_EQ(Errors<v1::SiteConfig>(yaml + "coordinator: \"coord:50051\"\n"),
            "c.yaml: 1 problem\n"
            "c.yaml:4:14: coordinator: needs a tls section: the coordinator only accepts mutual "
            "TLS");
  EXPECT_EQ(Errors<v1::SiteConfig>(yaml + "coordinator: coord\ntls: {ca_cert: a}\n"),
            "c.yaml: 3 problems\n"
            "c.yaml:4:14: coordinator: expected host:port (e.g. 0.0.0.0:50051), got 'coord'\n"
            "c.yaml:5:6: tls.cert: missing required key\n"
            "c.yaml:5:6: tls.key: missing required key");
  EXPECT_EQ(Errors<v1::SiteConfig>(yaml + "training: {steps: 0, epochs: 0}\n"),
            "c.yaml: 1 problem\n"
            "c.yaml:4:30: training.epochs: epochs and steps are both 0: set a local training "
            "budget");
  EXPECT_EQ(Errors<v1::SiteConfig>(yaml + "model: {}\n"),
            "c.yaml: 1 problem\n"
            "c.yaml:4:8: model.joints: missing required key");
}

// A command that loads its config logs as its `logging:` section says, unless --log-level /
// --log-format were given on the command line.
TEST(ConfigTest, LoadingAConfigAppliesItsLoggingSectionUnlessTheCommandLineSetIt) {
  const fs::path file = fs::temp_directory_path() /
                        ("fedjoint_config_logging_" + std::to_string(::getpid()) + ".yaml");
  auto load_with = [&](const std::string& logging) {
    std::ofstream(file) << kMinimalSite << logging;
    auto config = LoadConfig<v1::SiteConfig>(file);
    EXPECT_TRUE(config.ok()) << config.status();
  };
  auto logger = log::Get("config-test");
  ASSERT_TRUE(log::Setup({}).ok());
  log::SetCommandLineOverrides(false, false);

  load_with("logging: {level: error, format: json}\n");
  EXPECT_EQ(logger->level(), spdlog::level::err);
  ::testing::internal::CaptureStderr();
  logger->error("hello");
  const std::string line = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(line, ::testing::StartsWith("{"));
  EXPECT_THAT(line, ::testing::HasSubstr("\"msg\":\"hello\""));

  // An explicit --log-level wins; the format still comes from the file.
  ASSERT_TRUE(log::Setup({.level = "warn"}).ok());
  log::SetCommandLineOverrides(/*level=*/true, /*format=*/false);
  load_with("logging: {level: debug, format: human}\n");
  EXPECT_EQ(logger->level(), spdlog::level::warn);
  ::testing::internal::CaptureStderr();
  logger->warn("hello");
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), ::testing::Not(::testing::StartsWith("{")));

  log::SetCommandLineOverrides(false, false);
  ASSERT_TRUE(log::Setup({}).ok());
  fs::remove(file);
}

}  // namespace
}  // namespace fedjoint::common::config
