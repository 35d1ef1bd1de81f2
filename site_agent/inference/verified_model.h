// Loading a model for `segment` only when it comes from the site's consortium, unmodified.
//
// What a model path can be, and what is verified:
//   DIR/global.safetensors(.sig) + DIR/model.safetensors   `pull-model --out DIR` or a site's
//       STATE/final (also found as DIR/final/...): the coordinator's signed global model, and
//       model.safetensors = the same tensors plus this site's own (site-scoped) tensors. The
//       signature of global.safetensors is checked, and every tensor of the global model must be
//       identical in model.safetensors; only names the global model lacks (the site's own
//       normalization) may come from the site's file.
//   FILE.safetensors + FILE.safetensors.sig                 a signed model file (e.g.
//       STATE/models/<digest>.safetensors): its signature is checked.
//   anything else (a `train` run folder, a bare file)        unsigned: refused unless
//       allow_unsigned (for models the site trained itself, which nobody signs).
// With a CA, a signature that exists but does not verify is always refused, also with
// allow_unsigned (which only excuses a missing signature).
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "common/security/model_signing.h"
#include "site_agent/inference/weights.h"

namespace fedjoint::site_agent::inference {

struct ModelTrust {
  // The consortium CA (pki/ca.crt); null: signatures cannot be checked, so only allow_unsigned
  // models load (with a warning from the caller).
  const common::security::SignatureVerifier* verifier = nullptr;
  bool allow_unsigned = false;
};

struct VerifiedModel {
  ModelFile file;  // the weights to segment with (merged for a federated model)
  bool signed_by_consortium = false;
  // For logs: what was loaded and why it is trusted.
  std::string provenance;
};

// Errors: NotFound (no model at `path`), Unauthenticated (no signature and !allow_unsigned; a
// signature by another CA or of another file), DataLoss (the file differs from what was signed, a
// corrupt file, or model.safetensors disagrees with the signed global model).
absl::StatusOr<VerifiedModel> LoadVerifiedModel(const std::filesystem::path& path,
                                                const ModelTrust& trust);

}  // namespace fedjoint::site_agent::inference
