#include "common/model/transfer.h"

#include <map>
#include <optional>
#include <set>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/tensor_naming.h"

namespace fedjoint::common::model {
namespace {

// `name` with its ".norms.<domain>." segment naming `domain` instead; nullopt for tensors
// without one (convolutions, heads).
std::optional<std::string> WithNormDomain(const std::string& name, const std::string& domain) {
  const std::optional<std::string> own = DomainOf(name);
  if (!own) return std::nullopt;
  const std::string segment = ".norms." + *own + ".";
  const std::size_t pos = name.find(segment);
  if (pos == std::string::npos) return std::nullopt;  // a head: heads.<joint>.*
  return name.substr(0, pos) + ".norms." + domain + "." + name.substr(pos + segment.size());
}

std::string Shape(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

}  // namespace

std::string TransferReport::ToString() const {
  std::string text = absl::StrCat(copied.size(), " tensors copied, ", fresh.size(), " fresh, ",
                                  mismatched.size(), " with another shape");
  if (!fresh.empty()) absl::StrAppend(&text, "; fresh: ", absl::StrJoin(fresh, ", "));
  if (!mismatched.empty()) {
    absl::StrAppend(&text, "; other shape: ", absl::StrJoin(mismatched, ", "));
  }
  return text;
}

absl::StatusOr<TransferReport> TransferWeights(const tensors::TensorMap& source,
                                               tensors::TensorMap& target) {
  // The joints (or "shared") the source's norms and heads are named after.
  std::set<std::string> source_domains;
  for (const auto& [name, tensor] : source) {
    if (auto domain = DomainOf(name)) source_domains.insert(*domain);
  }
  std::optional<std::string> only_domain;
  if (source_domains.size() == 1) only_domain = *source_domains.begin();

  TransferReport report;
  std::map<std::string, at::Tensor> filled;
  for (const auto& [name, tensor] : target) {
    auto it = source.find(name);
    if (it == source.end() && only_domain) {
      if (auto renamed = WithNormDomain(name, *only_domain)) it = source.find(*renamed);
    }
    if (it == source.end()) {
      report.fresh.push_back(name);
      continue;
    }
    if (it->second.sizes() != tensor.sizes()) {
      report.mismatched.push_back(
          absl::StrCat(name, ": source ", Shape(it->second), " vs model ", Shape(tensor)));
      continue;
    }
    filled[name] = it->second.to(tensor.dtype()).clone();
    report.copied.push_back(name);
  }
  if (report.copied.empty()) {
    return absl::InvalidArgumentError(
        "the source model shares no tensor (same name and shape) with this model: it is not a "
        "model of this architecture and width");
  }
  for (auto& [name, tensor] : filled) target[name] = std::move(tensor);
  return report;
}

}  // namespace fedjoint::common::model
