// How the networks of this module name their tensors, and what a name says about its domain. Pure
// string code, no torch. Scope rules (common/aggregation/scope_policy.h) are written against these
// names.
//
// Naming scheme of the networks in this module (a wire format: the keys of every weights file):
//
//   encoder.conv1.weight, encoder.layer2.0.downsample.0.weight
//       torchvision ResNet names, prefixed "encoder."
//   encoder.bn1.norms.<domain>.weight, encoder.layer1.0.bn2.norms.<domain>.running_mean,
//   decoder.blocks.<i>.bn1.norms.<domain>.bias
//       every normalization tensor (affine parameters and running statistics) has the segment
//       ".norms.<domain>.", where <domain> is a joint name, or "shared" in the shared variant
//   decoder.blocks.<i>.conv1.weight
//       decoder convolutions
//   heads.<joint>.weight, heads.<joint>.bias
//       one output head per joint (domain variant); head.weight / head.bias in the shared variant
//   projections.<stage>.fc1.weight
//       projection heads ("stem", "layer1".."layer4")
//
// So "*.norms.*" (or the looser "*norm*") selects every normalization tensor, "heads.*" the
// per-joint heads, and everything else is a convolution or linear layer.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fedjoint::common::model {

// The domain a tensor belongs to by name: <joint> for "heads.<joint>.*" and for any name with a
// ".norms.<domain>." segment ("shared" in the shared variant); nullopt for other tensors.
std::optional<std::string> DomainOf(std::string_view name);

}  // namespace fedjoint::common::model
