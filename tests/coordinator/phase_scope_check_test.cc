#include "coordinator/phase_scope_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/config/config.h"

namespace fedjoint::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A minimal valid coordinator config with one phase; `phase` is that phase's YAML body.
std::string Config(const std::string& phase) {
  return "listen: 127.0.0.1:0\n"
         "state_dir: s\n"
         "tls: {ca_cert: ca.crt, server_cert: s.crt, server_key: s.key}\n"
         "signing_key: k.key\n"
         "job:\n"
         "  phases:\n"
         "    - name: p\n"
         "      rounds: 1\n" +
         phase;
}

const char* kUNet =
    "      model:\n"
    "        architecture: unet_resnet\n"
    "        width_multiplier: 0.125\n"
    "        joints: [{name: knee, structures: [femur, tibia]}]\n";
const char* kAutoEncoder =
    "      model:\n"
    "        architecture: shape_autoencoder\n"
    "        joints: [{name: knee, structures: [femur, tibia]}]\n";

absl::StatusOr<v1::CoordinatorConfig> Load(const std::string& yaml) {
  v1::CoordinatorConfig config;
  absl::Status status = common::config::ParseYamlInto(
      yaml, "c.yaml", {}, &config,
      common::config::CrossFieldCheckWith<v1::CoordinatorConfig>(ScopesAgainstModelsCheck()));
  if (!status.ok()) return status;
  return config;
}

TEST(PhaseScopeCheckTest, ARuleThatMatchesNoTensorIsRefusedAtItsLine) {
  auto loaded = Load(Config(std::string(kUNet) + "      scopes:\n"
                                                 "        - {pattern: '*.bn.*', scope: site}\n"
                                                 "        - {pattern: 'heads.*', scope: domain}\n"
                                                 "        - {pattern: '*', scope: global}\n"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("c.yaml:14:21: job.phases[0].scopes[0].pattern: '*.bn.*' decides the "
                        "scope of no tensor of phase 'p''s unet_resnet network"));
}

TEST(PhaseScopeCheckTest, WrittenRulesThatMatchAreAccepted) {
  auto loaded = Load(Config(std::string(kUNet) + "      scopes:\n"
                                                 "        - {pattern: '*.norms.*', scope: site}\n"
                                                 "        - {pattern: 'heads.*', scope: domain}\n"
                                                 "        - {pattern: '*', scope: global}\n"));
  EXPECT_TRUE(loaded.ok()) << loaded.status();
}

TEST(PhaseScopeCheckTest, TheDefaultTableIsAcceptedOnEveryArchitecture) {
  // The default table's norm and head rules have nothing to match on an auto-encoder.
  auto loaded = Load(Config(kAutoEncoder));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(CheckScopesAgainstModels(*loaded), IsEmpty());
  // The check's idea of the default table is the schema's: the same table written out is
  // exempt too (and refused once one rule differs).
  const auto& defaults = loaded->job().phases(0).scopes();
  ASSERT_EQ(defaults.size(), 3);
  std::string written = std::string(kAutoEncoder) + "      scopes:\n";
  for (const auto& rule : defaults) {
    written += "        - {pattern: '" + rule.pattern() + "', scope: " + rule.scope() + "}\n";
  }
  EXPECT_TRUE(Load(Config(written)).ok());
  std::string changed = written;
  changed.replace(changed.find("'*norm*'"), 8, "'*norms*'");
  EXPECT_FALSE(Load(Config(changed)).ok());
}

}  // namespace
}  // namespace fedjoint::coordinator
