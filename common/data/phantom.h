// The phantom generator: synthetic, MRI-like pediatric joints (ankle, knee, shoulder) with bone
// labels — the project's built-in data for the demo, the tests and the experiments.
//
// Generation is a pure function of (options, subject): no files, no global state. Anatomy is a set
// of smooth implicit shapes (unions of ellipsoids and tapered capsules, carved against each other
// at the joints) in a reference child, scaled by age, jittered per subject, posed (flexion,
// abduction, tilt) and warped by a smooth random displacement field. Each bone has a thin dark
// cortex, textured marrow (red in metaphyses, fatty in epiphyses), a cartilage cap whose thickness
// falls with age, and — for long bones — an open growth plate (physis). Soft tissue: skin,
// subcutaneous fat, muscle with fat septa, tendons and ligaments, fat pads, joint fluid, vessels.
// Intensities follow the chosen MR contrast ("domain"); the image then gets partial-volume
// averaging across thick slices, a smooth multiplicative bias field and Rician noise.
// docs/phantoms.md describes the model and shows pictures.
//
// Labels (uint8): 0 background (including unlabelled bones such as the distal fibula of an ankle),
// then the joint's bones in the order of PhantomBoneNames(). A bone's label covers its ossified
// parts — metaphysis, diaphysis, the ossified epiphysis — and the physis between them; cartilage
// (articular and unossified epiphyseal) is not bone (see PhantomOptions::physis_in_label).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/volume.h"

namespace fedjoint::common::data {

// The joints and MR contrasts the generator knows, in a fixed order (for messages and help text).
const std::vector<std::string>& PhantomJoints();   // ankle, knee, shoulder
const std::vector<std::string>& PhantomDomains();  // t1, pd, t2fs, pdfs, t2

// The bones of `joint` in label order: label value v is PhantomBoneNames(joint)[v - 1].
//   ankle: calcaneus, talus, tibia; knee: femur, tibia, patella, fibula; shoulder: humerus, scapula
// (the order of common/model/joint_spec.cc's DefaultJoints).
absl::StatusOr<std::vector<std::string>> PhantomBoneNames(std::string_view joint);

// Tissue classes of the generator's ground truth (PhantomSubject::tissue), for tests and analysis.
enum class PhantomTissue : uint8_t {
  kAir = 0,
  kSkin,
  kFat,
  kMuscle,
  kFibrous,  // tendons, ligaments, menisci, labrum, fibrous septa
  kVessel,
  kFluid,
  kCartilage,  // articular and unossified epiphyseal cartilage
  kPhysis,     // growth plate (or the dark scar line of a closed one)
  kCortex,
  kMarrow,
  kCount,
};

struct PhantomOptions {
  std::string joint = "knee";  // one of PhantomJoints()
  std::string domain = "t1";   // one of PhantomDomains()
  uint64_t seed = 0;
  // WritePhantomDataset: index of the first subject (subjects first..first+n-1), and how many of
  // them get a label file (-1: all; the rest are unlabeled scans, listed without `label`).
  int first_subject = 0;
  int labeled_subjects = -1;

  // Acquisition geometry. 0 means the joint's default: knee and ankle sagittal, shoulder
  // coronal-oblique; 176 x 176 pixels of 0.8 mm scaled by the child's size (0.64-0.92 mm: the
  // technologist fits the field of view to the patient); 28 (knee), 26 (ankle), 24 (shoulder)
  // slices.
  int64_t in_plane_size = 0;        // pixels along i and j
  double in_plane_spacing_mm = 0;   // pixel size
  int64_t num_slices = 0;           // slices along k
  double slice_thickness_mm = 3.0;  // excited slab per slice
  double slice_gap_mm = 0.3;        // spacing along k = thickness + gap
  // Samples across each slice's thickness averaged into one voxel (partial volume).
  int sub_slices = 4;

  // Subjects' ages are drawn uniformly in [min_age_years, max_age_years].
  double min_age_years = 5.0;
  double max_age_years = 17.0;
  // Multipliers of the per-subject Rician noise level and bias-field strength (0 turns them off).
  double noise_scale = 1.0;
  double bias_scale = 1.0;
  // true: the growth plate inside a bone belongs to the bone's label (one connected label per
  // bone, as raters usually outline it). false: physis voxels are background.
  bool physis_in_label = true;
  // false: anatomy depends on (seed, joint, domain, subject), so two sites with different
  // contrasts never share subjects. true: anatomy depends on (seed, joint, subject) only, so one
  // subject can be rendered in several contrasts (same bones, same pose).
  bool share_anatomy_across_domains = false;
};

// Checks the options; errors name the field and list the valid values.
absl::Status ValidatePhantomOptions(const PhantomOptions& options);

struct PhantomSubject {
  std::string id;  // "<joint>-<domain>-<subject, 3 digits>", e.g. knee-t1-007
  int subject = 0;
  Volume image;   // float32, arbitrary scanner units (roughly 0..2000)
  Volume label;   // uint8, 0 = background, 1..K = PhantomBoneNames(joint)
  Volume tissue;  // uint8 PhantomTissue per voxel (majority over each slice's thickness)

  // What was drawn for this subject.
  double age_years = 0;
  std::string sex;             // "female" or "male"
  double scale = 1;            // bone size relative to the reference child (~12.5 years)
  double pose_deg = 0;         // knee flexion, ankle plantar(+)/dorsi(-)flexion, shoulder abduction
  double noise_sigma = 0;      // Rician noise sigma, in image units
  bool physis_closed = false;  // growth plates fused (older teenagers)
};

// The subject id used in manifests and metadata.
std::string PhantomSubjectId(std::string_view joint, std::string_view domain, int subject);

// Generates one subject. Deterministic: the same options and subject give bit-identical volumes.
// Errors: InvalidArgument for invalid options or a negative subject.
absl::StatusOr<PhantomSubject> GeneratePhantom(const PhantomOptions& options, int subject);

}  // namespace fedjoint::common::data
