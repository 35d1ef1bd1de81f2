// Runs the real `fedjoint-site segment` on tiny untrained models (nothing is trained: geometry,
// trust and error handling do not depend on what the network learned).
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/data/volume_io.h"
#include "common/mesh/mesh_io.h"
#include "common/model/model_factory.h"
#include "common/security/model_signing.h"
#include "common/security/pki.h"
#include "site_agent/inference/weights.h"
#include "tests/site_agent/training/test_data.h"

namespace fedjoint::site_agent::inference {
namespace {

using common::model::BuildUNet;

namespace fs = std::filesystem;
namespace data = common::data;
namespace security = common::security;
using ::testing::HasSubstr;

struct Outcome {
  int exit_code = -1;  // -1: did not exit normally (a crash)
  std::string output;  // stdout and stderr
};

// A tiny domain-variant U-Net for the knee with 32-pixel slices of 2 mm.
v1::ModelConfig Config() {
  v1::ModelConfig config = training::test_util::TinyModel({"knee"});
  config.set_input_size(32);
  return config;
}

common::tensors::TensorMap Weights(uint64_t seed) {
  auto net = BuildUNet(Config(), seed);
  EXPECT_TRUE(net.ok()) << net.status();
  return StateDict(**net);
}

// Everything the tests share, made once per process: two consortia (our CA and another), and
// model folders in each layout.
class SegmentCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / fmt::format("fedjoint-segment-{}", ::getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    ASSERT_TRUE(security::InitPki(*dir_ / "pki", {}).ok());
    ASSERT_TRUE(security::InitPki(*dir_ / "other-pki", {}).ok());
    const common::tensors::TensorMap weights = Weights(7);

    // A model this site trained (unsigned), and the same file signed by our consortium.
    fs::create_directories(*dir_ / "local");
    ASSERT_TRUE(WriteModelFile(*dir_ / "local" / "model.safetensors", weights, Config()).ok());
    fs::create_directories(*dir_ / "signed");
    ASSERT_TRUE(WriteModelFile(*dir_ / "signed" / "model.safetensors", weights, Config()).ok());
    Sign(*dir_ / "pki", *dir_ / "signed" / "model.safetensors");
    fs::create_directories(*dir_ / "foreign");
    ASSERT_TRUE(WriteModelFile(*dir_ / "foreign" / "model.safetensors", weights, Config()).ok());
    Sign(*dir_ / "other-pki", *dir_ / "foreign" / "model.safetensors");

    // pull-model's layout: the signed global model holds no normalization (site-scoped), and
    // model.safetensors = global + the site's own normalization tensors.
    common::tensors::TensorMap global;
    for (const auto& [name, tensor] : weights) {
      if (name.find(".norms.") == std::string::npos) global[name] = tensor;
    }
    fs::create_directories(*dir_ / "pulled");
    ASSERT_TRUE(WriteModelFile(*dir_ / "pulled" / "global.safetensors", global, Config()).ok());
    Sign(*dir_ / "pki", *dir_ / "pulled" / "global.safetensors");
    ASSERT_TRUE(WriteModelFile(*dir_ / "pulled" / "model.safetensors", weights, Config()).ok());
    // A site that never trained: only the signed global model.
    fs::create_directories(*dir_ / "global-only");
    fs::copy(*dir_ / "pulled" / "global.safetensors", *dir_ / "global-only" / "model.safetensors");
    fs::copy(*dir_ / "pulled" / "global.safetensors.sig",
             *dir_ / "global-only" / "model.safetensors.sig");

    // Predicts "femur" (label 1) everywhere: its surface is the box of the whole grid. Slices
    // keep the scan's pixels (no in-plane resampling), so no border voxel falls outside the
    // network's field of view.
    v1::ModelConfig keep_pixels = Config();
    keep_pixels.set_in_plane_spacing_mm(0);
    common::tensors::TensorMap everywhere = weights;
    everywhere["heads.knee.bias"] = everywhere["heads.knee.bias"].clone();
    everywhere["heads.knee.bias"][1] = 1000.0;
    fs::create_directories(*dir_ / "everywhere");
    ASSERT_TRUE(
        WriteModelFile(*dir_ / "everywhere" / "model.safetensors", everywhere, keep_pixels).ok());
    Sign(*dir_ / "pki", *dir_ / "everywhere" / "model.safetensors");

    // A tilted, anisotropic scan.
    data::Volume scan;
    scan.geometry.size = {22, 18, 7};
    scan.geometry.spacing = {0.7, 0.9, 3.0};
    scan.geometry.origin = {-31.5, 12.25, 80.0};
    const double a = 0.35, b = -0.2, ca = std::cos(a), sa = std::sin(a), cb = std::cos(b),
                 sb = std::sin(b);
    scan.geometry.direction = {ca, -sa * cb, sa * sb, sa, ca * cb, -ca * sb, 0, sb, cb};
    torch::manual_seed(1);
    scan.voxels = torch::rand({7, 18, 22}) * 1000;
    ASSERT_TRUE(data::WriteVolume(scan, *dir_ / "tilted.nii.gz").ok());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static void Sign(const fs::path& pki, const fs::path& file) {
    auto signer = security::ModelSigner::Load(pki / "signing.key", pki / "signing.crt");
    ASSERT_TRUE(signer.ok()) << signer.status();
    ASSERT_TRUE(signer->SignFile(file).ok());
  }

  static Outcome Segment(const std::string& args) {
    const std::string site = std::string(FEDJOINT_BINARY_DIR) + "/site_agent/fedjoint-site";
    const fs::path out = *dir_ / "run-output.txt";
    const int status =
        std::system(fmt::format("{} segment {} > {} 2>&1", site, args, out.string()).c_str());
    Outcome run;
    if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
    std::ifstream in(out);
    run.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return run;
  }

  // --ca of our consortium.
  static std::string Ca() { return "--ca " + (*dir_ / "pki" / "ca.crt").string(); }

  // Debian's interpreter, where install-deps puts python3-nibabel (a pyenv or venv python3 found
  // first on PATH usually lacks it); any other system falls back to python3 on PATH.
  static Outcome Python(const std::string& script) {
    const fs::path file = *dir_ / "check.py";
    std::ofstream(file) << script;
    const fs::path out = *dir_ / "python-output.txt";
    const std::string python = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const int status =
        std::system(fmt::format("{} {} > {} 2>&1", python, file.string(), out.string()).c_str());
    Outcome run;
    if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
    std::ifstream in(out);
    run.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return run;
  }

  static void ExpectSameGrid(const data::Geometry& a, const data::Geometry& b) {
    EXPECT_EQ(a.size, b.size);
    for (int d = 0; d < 3; ++d) {
      EXPECT_NEAR(a.spacing[d], b.spacing[d], 1e-6) << "spacing " << d;
      EXPECT_NEAR(a.origin[d], b.origin[d], 1e-5) << "origin " << d;
    }
    for (int d = 0; d < 9; ++d) EXPECT_NEAR(a.direction[d], b.direction[d], 1e-6) << "dir " << d;
  }

  static fs::path* dir_;
};

fs::path* SegmentCommandTest::dir_ = nullptr;

TEST_F(SegmentCommandTest, TiltedNiftiGivesLabelsOnTheSameGrid) {
  const fs::path out = *dir_ / "tilted_labels.nii.gz";
  Outcome run = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                                    (*dir_ / "signed").string(), (*dir_ / "tilted.nii.gz").string(),
                                    out.string(), Ca()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("femur"));
  auto scan = data::ReadVolume(*dir_ / "tilted.nii.gz");
  auto labels = data::ReadLabelVolume(out);
  ASSERT_TRUE(scan.ok() && labels.ok());
  ExpectSameGrid(scan->geometry, labels->geometry);
  EXPECT_EQ(labels->voxels.scalar_type(), at::kByte);
  EXPECT_LE(labels->voxels.max().item<int64_t>(), 4);  // background + the knee's 4 bones
}

// An independent reader: nibabel's affine (sform/qform) of the output equals the input's, for a
// scan nibabel itself wrote with an oblique affine. No skip: install-deps installs python3-nibabel.
TEST_F(SegmentCommandTest, NibabelSeesTheInputAffineInTheOutput) {
  const fs::path in = *dir_ / "nibabel_in.nii.gz", out = *dir_ / "nibabel_out.nii.gz";
  Outcome made = Python(fmt::format(R"(
import numpy as np, nibabel as nib
rng = np.random.default_rng(0)
a, b = 0.3, 0.25
rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
affine = np.eye(4)
affine[:3, :3] = rz @ rx @ np.diag([0.6, 0.8, 3.5])
affine[:3, 3] = [12.5, -40.0, 7.25]
img = nib.Nifti1Image(rng.random((20, 16, 6)).astype(np.float32) * 500, affine)
img.set_qform(affine, code=1)
img.set_sform(affine, code=1)
nib.save(img, "{}")
)",
                                    in.string()));
  ASSERT_EQ(made.exit_code, 0) << "python3 with nibabel is required: " << made.output;
  Outcome run = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                                    (*dir_ / "signed").string(), in.string(), out.string(), Ca()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  Outcome check = Python(fmt::format(R"(
import numpy as np, nibabel as nib
a, b = nib.load("{}"), nib.load("{}")
assert a.shape == b.shape, (a.shape, b.shape)
assert np.allclose(a.affine, b.affine, atol=1e-4), (a.affine, b.affine)
data = np.asarray(b.dataobj)
assert data.min() >= 0 and data.max() <= 4, (data.min(), data.max())
print("affine ok")
)",
                                     in.string(), out.string()));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_THAT(check.output, HasSubstr("affine ok"));
}

TEST_F(SegmentCommandTest, DicomFolderGivesLabelsOnTheSeriesGrid) {
  const fs::path dicom = fs::path(FEDJOINT_SOURCE_DIR) / "tests/fixtures/dicom-ct-3slice";
  const fs::path out = *dir_ / "dicom_labels.nrrd";
  Outcome run =
      Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                          (*dir_ / "signed").string(), dicom.string(), out.string(), Ca()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto scan = data::ReadVolume(dicom);
  auto labels = data::ReadLabelVolume(out);
  ASSERT_TRUE(scan.ok() && labels.ok());
  ExpectSameGrid(scan->geometry, labels->geometry);
  // The fixture's own segmentation was made on this grid: ours must overlay it too.
  auto reference = data::ReadLabelVolume(dicom / "spine_seg.nrrd");
  ASSERT_TRUE(reference.ok());
  ExpectSameGrid(reference->geometry, labels->geometry);
}

TEST_F(SegmentCommandTest, SurfacesAreClosedAndSitInPhysicalSpace) {
  const fs::path out = *dir_ / "everywhere.nii.gz", surfaces = *dir_ / "surfaces";
  Outcome run = Segment(fmt::format(
      "--model {} --joint knee --input {} --output {} --surfaces {} --largest-component {}",
      (*dir_ / "everywhere").string(), (*dir_ / "tilted.nii.gz").string(), out.string(),
      surfaces.string(), Ca()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_TRUE(fs::exists(surfaces / "femur.stl")) << run.output;
  ASSERT_TRUE(fs::exists(surfaces / "femur.obj"));
  EXPECT_FALSE(fs::exists(surfaces / "tibia.stl"));  // no tibia voxel: no surface
  auto mesh = common::mesh::ReadBinaryStl(surfaces / "femur.stl");
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  // Closed: merged by position, every edge is used once in each direction.
  std::map<std::array<double, 3>, int32_t> index;
  std::map<std::pair<int32_t, int32_t>, int> edges;
  double six_volume = 0;
  for (const auto& t : mesh->triangles) {
    std::array<int32_t, 3> v;
    std::array<std::array<double, 3>, 3> p;
    for (int c = 0; c < 3; ++c) {
      p[c] = mesh->vertices[t[c]];
      v[c] = index.try_emplace(p[c], static_cast<int32_t>(index.size())).first->second;
    }
    for (int e = 0; e < 3; ++e) ++edges[{v[e], v[(e + 1) % 3]}];
    six_volume += p[0][0] * (p[1][1] * p[2][2] - p[1][2] * p[2][1]) -
                  p[0][1] * (p[1][0] * p[2][2] - p[1][2] * p[2][0]) +
                  p[0][2] * (p[1][0] * p[2][1] - p[1][1] * p[2][0]);
  }
  for (const auto& [edge, count] : edges) {
    ASSERT_EQ(count, 1) << "edge used twice in one direction";
    ASSERT_TRUE(edges.count({edge.second, edge.first})) << "open edge";
  }
  // Femur everywhere: the surface is the grid's box (through the outer voxel faces) with chamfered
  // edges, so its volume is close to the scan's and its corners are the box corners in LPS.
  auto scan = data::ReadVolume(*dir_ / "tilted.nii.gz");
  ASSERT_TRUE(scan.ok());
  const auto& g = scan->geometry;
  const double box = g.NumVoxels() * g.spacing[0] * g.spacing[1] * g.spacing[2];
  EXPECT_GT(six_volume / 6, 0.8 * box);
  EXPECT_LT(six_volume / 6, 1.0 * box);
  // Mapped back to voxel indices, the vertices fill exactly the box of the voxel faces,
  // [-0.5, n - 0.5] along each axis: the mesh is in physical space through the scan's geometry.
  std::array<double, 3> low{1e9, 1e9, 1e9}, high{-1e9, -1e9, -1e9};
  for (const auto& [p, i] : index) {
    const auto ijk = data::PhysicalToIndex(g, p);
    for (int d = 0; d < 3; ++d) {
      low[d] = std::min(low[d], ijk[d]);
      high[d] = std::max(high[d], ijk[d]);
    }
  }
  for (int d = 0; d < 3; ++d) {
    EXPECT_NEAR(low[d], -0.5, 1e-3) << "axis " << d;
    EXPECT_NEAR(high[d], g.size[d] - 0.5, 1e-3) << "axis " << d;
  }
}

// A copy of the pulled model folder (signed global model beside it) whose model.safetensors has
// the knee head's bias moved by `shift`, written with `extra` metadata.
fs::path PulledWithOtherWeights(const fs::path& dir, const std::string& name, double shift,
                                const common::tensors::Metadata& extra) {
  const fs::path copy = dir / name;
  fs::create_directories(copy);
  fs::copy(dir / "pulled", copy,
           fs::copy_options::overwrite_existing | fs::copy_options::recursive);
  common::tensors::TensorMap weights = Weights(7);
  weights["heads.knee.bias"] = weights["heads.knee.bias"] + shift;
  EXPECT_TRUE(WriteModelFile(copy / "model.safetensors", weights, Config(), extra).ok());
  return copy;
}

TEST_F(SegmentCommandTest, PulledFederatedModelIsVerifiedAndTamperingRefused) {
  const fs::path out = *dir_ / "pulled.nii.gz";
  Outcome run = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                                    (*dir_ / "pulled").string(), (*dir_ / "tilted.nii.gz").string(),
                                    out.string(), Ca()));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("consortium-signed"));

  // model.safetensors with a shared tensor that differs from the signed global model.
  const fs::path tampered = PulledWithOtherWeights(*dir_, "tampered", 1.0, {});
  run = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}", tampered.string(),
                            (*dir_ / "tilted.nii.gz").string(), out.string(), Ca()));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("tensor 'heads.knee.bias' differs from the signed global"));
}

TEST_F(SegmentCommandTest, APersonalizedModelIsTheSitesOwnAndSaysWhereItStarted) {
  // STATE/personalized/: the signed global model beside weights fine-tuned at the site.
  const fs::path personal =
      PulledWithOtherWeights(*dir_, "personalized", 0.1, {{"fedjoint.personalized", "20 steps"}});
  const std::string args =
      fmt::format("--model {} --joint knee --input {} --output {} {}", personal.string(),
                  (*dir_ / "tilted.nii.gz").string(), (*dir_ / "personal.nii.gz").string(), Ca());
  Outcome run = Segment(args);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("was personalized at this site (20 steps)"));
  EXPECT_THAT(run.output, HasSubstr("--allow-unsigned"));
  run = Segment(args + " --allow-unsigned");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("whose consortium signature was checked"));
}

TEST_F(SegmentCommandTest, SiteWithoutNormalizationTensorsIsToldWhy) {
  Outcome run = Segment(fmt::format(
      "--model {} --joint knee --input {} --output {} {}", (*dir_ / "global-only").string(),
      (*dir_ / "tilted.nii.gz").string(), (*dir_ / "x.nii.gz").string(), Ca()));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("no normalization tensors of this site for joint 'knee'"));
  EXPECT_FALSE(fs::exists(*dir_ / "x.nii.gz"));

  // The documented fallback: statistics re-estimated from the site's own scans.
  run =
      Segment(fmt::format("--model {} --joint knee --input {} --output {} {} --recalibrate-norm {}",
                          (*dir_ / "global-only").string(), (*dir_ / "tilted.nii.gz").string(),
                          (*dir_ / "x.nii.gz").string(), Ca(), (*dir_ / "tilted.nii.gz").string()));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("re-estimated on 1 scan(s)"));
  EXPECT_TRUE(fs::exists(*dir_ / "x.nii.gz"));
}

TEST_F(SegmentCommandTest, UnsignedModelNeedsAllowUnsigned) {
  const std::string args =
      fmt::format("--model {} --joint knee --input {} --output {}", (*dir_ / "local").string(),
                  (*dir_ / "tilted.nii.gz").string(), (*dir_ / "local.nii.gz").string());
  Outcome run = Segment(args + " " + Ca());
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("has no consortium signature"));
  EXPECT_THAT(run.output, HasSubstr("--allow-unsigned"));
  run = Segment(args + " --allow-unsigned");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("signature not checked"));
  // Without any CA a signed model cannot be trusted either.
  run = Segment(fmt::format("--model {} --joint knee --input {} --output {}",
                            (*dir_ / "signed").string(), (*dir_ / "tilted.nii.gz").string(),
                            (*dir_ / "local.nii.gz").string()));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--ca"));
}

TEST_F(SegmentCommandTest, BadInputsFailWithAClearMessage) {
  const std::string model = (*dir_ / "signed").string();
  const std::string scan = (*dir_ / "tilted.nii.gz").string();
  const std::string out = (*dir_ / "bad.nii.gz").string();

  Outcome missing = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}", model,
                                        (*dir_ / "nowhere.nii.gz").string(), out, Ca()));
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("nowhere.nii.gz: no such file"));

  Outcome flat = Python(fmt::format(R"(
import numpy as np, nibabel as nib
nib.save(nib.Nifti1Image(np.zeros((16, 16), np.float32), np.eye(4)), "{}")
)",
                                    (*dir_ / "flat.nii.gz").string()));
  ASSERT_EQ(flat.exit_code, 0) << flat.output;
  Outcome two_d = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}", model,
                                      (*dir_ / "flat.nii.gz").string(), out, Ca()));
  EXPECT_EQ(two_d.exit_code, 1) << two_d.output;
  EXPECT_THAT(two_d.output, HasSubstr("flat.nii.gz: image is 2D"));

  Outcome joint = Segment(
      fmt::format("--model {} --joint hip --input {} --output {} {}", model, scan, out, Ca()));
  EXPECT_EQ(joint.exit_code, 1) << joint.output;
  EXPECT_THAT(joint.output, HasSubstr("--joint hip"));
  EXPECT_THAT(joint.output, HasSubstr("[knee]"));

  Outcome foreign = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                                        (*dir_ / "foreign").string(), scan, out, Ca()));
  EXPECT_EQ(foreign.exit_code, 1) << foreign.output;
  EXPECT_THAT(foreign.output, HasSubstr("not issued by the consortium CA"));

  // One flipped byte in the weights of a signed model.
  const fs::path corrupt = *dir_ / "corrupt";
  fs::create_directories(corrupt);
  fs::copy(*dir_ / "signed", corrupt,
           fs::copy_options::overwrite_existing | fs::copy_options::recursive);
  {
    std::fstream f(corrupt / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);
    char c;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(-100, std::ios::end);
    f.write(&c, 1);
  }
  Outcome corrupted = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                                          corrupt.string(), scan, out, Ca()));
  EXPECT_EQ(corrupted.exit_code, 1) << corrupted.output;
  EXPECT_THAT(corrupted.output, HasSubstr("the file is corrupt or was modified"));

  // Truncated, and unsigned: the safetensors reader names the file.
  const fs::path truncated = *dir_ / "truncated";
  fs::create_directories(truncated);
  fs::copy(*dir_ / "local" / "model.safetensors", truncated / "model.safetensors");
  fs::resize_file(truncated / "model.safetensors",
                  fs::file_size(truncated / "model.safetensors") / 2);
  Outcome cut =
      Segment(fmt::format("--model {} --joint knee --input {} --output {} --allow-unsigned",
                          truncated.string(), scan, out));
  EXPECT_EQ(cut.exit_code, 1) << cut.output;
  EXPECT_THAT(cut.output, HasSubstr((truncated / "model.safetensors").string()));

  Outcome extension = Segment(fmt::format("--model {} --joint knee --input {} --output {} {}",
                                          model, scan, (*dir_ / "labels.png").string(), Ca()));
  EXPECT_EQ(extension.exit_code, 1) << extension.output;
  EXPECT_THAT(extension.output, HasSubstr("unsupported extension"));
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace fedjoint::site_agent::inference
