#include "common/model/tensor_naming.h"

#include <cstddef>

namespace fedjoint::common::model {
namespace {

// The dot-delimited segment that starts at `pos` in `name`.
std::string_view SegmentAt(std::string_view name, std::size_t pos) {
  std::size_t end = name.find('.', pos);
  return name.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

}  // namespace

std::optional<std::string> DomainOf(std::string_view name) {
  constexpr std::string_view kHeads = "heads.";
  constexpr std::string_view kNorms = ".norms.";
  if (name.starts_with(kHeads)) {
    std::string_view joint = SegmentAt(name, kHeads.size());
    if (!joint.empty()) return std::string(joint);
  }
  std::size_t pos = name.find(kNorms);
  if (pos != std::string_view::npos) {
    std::string_view domain = SegmentAt(name, pos + kNorms.size());
    if (!domain.empty()) return std::string(domain);
  }
  return std::nullopt;
}

}  // namespace fedjoint::common::model
