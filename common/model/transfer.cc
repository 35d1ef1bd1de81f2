#include "common/model/transfer.h"

#include <map>
#include <optional>
#include <set>
#include <string_view>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedjoint::common::model {
namespace {

constexpr std::string_view kNorms = ".norms.";

// "a.norms.<domain>.b" -> ("a.norms.", ".b"); nullopt without a norms segment.
std::optional<std::pair<std::string, std::string>> SplitAroundDomain(const std::string& name) {
  const std::size_t pos = name.find(kNorms);
  if (pos == std::string::npos) return std::nullopt;
  const std::size_t start = pos + kNorms.size();
  const std::size_t end = name.find('.', start);
  if (end == std::string::npos || end == start) return std::nullopt;
  return std::make_pair(name.substr(0, start), name.substr(end));
}

// The source's normalization domains (the segment after ".norms.").
std::set<std::string> NormDomains(const tensors::TensorMap& source) {
  std::set<std::string> domains;
  for (const auto& [name, tensor] : source) {
    if (auto parts = SplitAroundDomain(name)) {
      const std::size_t start = parts->first.size();
      domains.insert(name.substr(start, name.size() - start - parts->second.size()));
    }
  }
  return domains;
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
  const std::set<std::string> source_domains = NormDomains(source);
  std::optional<std::string> only_domain;
  if (source_domains.size() == 1) only_domain = *source_domains.begin();

  TransferReport report;
  std::map<std::string, at::Tensor> filled;
  for (const auto& [name, tensor] : target) {
    auto it = source.find(name);
    if (it == source.end() && only_domain) {
      if (auto parts = SplitAroundDomain(name)) {
        it = source.find(parts->first + *only_domain + parts->second);
      }
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
