#include "site_agent/inference/verified_model.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "common/base/status.h"
#include "common/base/status_macros.h"
#include "common/tensors/torch_tensors.h"

namespace fedjoint::site_agent::inference {
namespace {

namespace fs = std::filesystem;

// Where the model's weights are, and which file carries the signature.
struct Layout {
  fs::path weights;        // what gets loaded
  fs::path signed_file;    // what the .sig covers: the weights, or the global model beside them
  bool federated = false;  // weights = signed global model + the site's own tensors
};

absl::StatusOr<Layout> FindLayout(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(fmt::format("model {}: no such file or folder", path.string()));
  }
  if (fs::is_directory(path, ec)) {
    for (const fs::path& dir : {path, path / "final"}) {
      if (fs::is_regular_file(dir / "global.safetensors", ec)) {
        if (!fs::is_regular_file(dir / "model.safetensors", ec)) {
          return absl::NotFoundError(fmt::format(
              "model folder {} has global.safetensors but no model.safetensors (the global model "
              "merged with this site's tensors, written by pull-model)",
              dir.string()));
        }
        return Layout{dir / "model.safetensors", dir / "global.safetensors", true};
      }
    }
  }
  ASSIGN_OR_RETURN(fs::path weights, ResolveModelPath(path));
  return Layout{weights, weights, false};
}

absl::Status CheckMergedAgainstGlobal(const ModelFile& merged, const fs::path& global_path) {
  ASSIGN_OR_RETURN(common::tensors::TensorMap global,
                   common::tensors::LoadSafetensors(global_path));
  try {
    for (const auto& [name, tensor] : global) {
      auto it = merged.weights.find(name);
      if (it == merged.weights.end()) {
        return absl::DataLossError(
            fmt::format("{}: lacks tensor '{}' of the signed global model {}", merged.path.string(),
                        name, global_path.string()));
      }
      if (it->second.sizes() != tensor.sizes() ||
          it->second.scalar_type() != tensor.scalar_type() || !torch::equal(it->second, tensor)) {
        return absl::DataLossError(fmt::format(
            "{}: tensor '{}' differs from the signed global model {} (the file was changed after "
            "pull-model wrote it; pull the model again)",
            merged.path.string(), name, global_path.string()));
      }
    }
  } catch (const c10::Error& e) {
    return absl::DataLossError(fmt::format("{}: comparing with {}: {}", merged.path.string(),
                                           global_path.string(), e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifiedModel> LoadVerifiedModel(const fs::path& path, const ModelTrust& trust) {
  ASSIGN_OR_RETURN(Layout layout, FindLayout(path));
  const fs::path sig = common::security::SignaturePathFor(layout.signed_file);
  std::error_code ec;
  VerifiedModel model;
  if (fs::exists(sig, ec)) {
    if (trust.verifier != nullptr) {
      if (absl::Status s = trust.verifier->VerifyFile(layout.signed_file, sig); !s.ok()) {
        return common::base::Annotate(s, fmt::format("model {} is not a valid consortium model",
                                                     layout.signed_file.string()));
      }
      model.signed_by_consortium = true;
    } else if (!trust.allow_unsigned) {
      return absl::FailedPreconditionError(
          fmt::format("model {} is signed ({}), but no consortium CA was given to check it",
                      path.string(), sig.string()));
    }
  } else if (!trust.allow_unsigned) {
    return absl::UnauthenticatedError(fmt::format(
        "model {} has no consortium signature ({} is missing): only models published by the "
        "coordinator are trusted. A model this site trained itself (`fedjoint-site train`) is "
        "unsigned: pass --allow-unsigned to use it",
        path.string(), sig.string()));
  }
  ASSIGN_OR_RETURN(model.file, ReadModelFile(layout.weights));
  // A personalized model (STATE/personalized/) is the signed global model fine-tuned here: the
  // signature proves where it started, not the weights in use, which are this site's own.
  const bool personalized = layout.federated && model.file.metadata.count("fedjoint.personalized");
  if (personalized) {
    if (!trust.allow_unsigned) {
      return absl::UnauthenticatedError(fmt::format(
          "model {} was personalized at this site ({}): its weights are this site's own, "
          "fine-tuned from the consortium model {}, so no consortium signature covers them; pass "
          "--allow-unsigned to use it, or use the global model in final/",
          layout.weights.string(), model.file.metadata.at("fedjoint.personalized"),
          layout.signed_file.string()));
    }
    model.provenance = fmt::format(
        "{} (personalized at this site from {}, {}; the fine-tuned weights are not signed)",
        layout.weights.string(), layout.signed_file.string(),
        model.signed_by_consortium ? "whose consortium signature was checked"
                                   : "signature NOT checked");
    model.signed_by_consortium = false;
    return model;
  }
  if (layout.federated) {
    RETURN_IF_ERROR(CheckMergedAgainstGlobal(model.file, layout.signed_file));
  }
  if (model.signed_by_consortium) {
    model.provenance = layout.federated
                           ? fmt::format("{} (consortium-signed {} plus this site's own tensors)",
                                         layout.weights.string(), layout.signed_file.string())
                           : fmt::format("{} (consortium-signed)", layout.weights.string());
  } else {
    model.provenance =
        fmt::format("{} (signature NOT checked: --allow-unsigned)", layout.weights.string());
  }
  return model;
}

}  // namespace fedjoint::site_agent::inference
