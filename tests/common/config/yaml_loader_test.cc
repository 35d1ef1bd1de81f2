// The generic loader against a test schema (config_test_schema.proto) with every field kind and
// rule: each rejection is checked with its exact message and position.
#include "common/config/yaml_loader.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "common/config/yaml_writer.h"
#include "config_test_schema.pb.h"

namespace fedjoint::common::config {
namespace {

namespace fs = std::filesystem;
using ::fedjoint::config_test::BrokenSchema;
using ::fedjoint::config_test::Color;
using ::fedjoint::config_test::Everything;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Parses `yaml` as "t.yaml" and returns the error message ("" when valid).
std::string Errors(std::string_view yaml, Everything* out = nullptr) {
  Everything scratch;
  absl::Status status = ParseYamlInto(yaml, "t.yaml", "/base/dir", out ? out : &scratch);
  if (status.ok()) return "";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

// The single problem line of an error message with exactly one problem.
std::string OneError(std::string_view yaml) {
  std::string errors = Errors(yaml);
  std::string summary = "t.yaml: 1 problem\n";
  EXPECT_THAT(errors, StartsWith(summary)) << yaml;
  return errors.size() >= summary.size() ? errors.substr(summary.size()) : errors;
}

Everything ParseOk(std::string_view yaml) {
  Everything out;
  absl::Status status = ParseYamlInto(yaml, "t.yaml", "/base/dir", &out);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

TEST(YamlLoaderTest, ParsesEveryScalarKind) {
  Everything m = ParseOk(
      "needed: yes\n"
      "flag: true\n"
      "i32: -2147483648\n"
      "i64: 9223372036854775807\n"
      "u32: 4294967295\n"
      "u64: 18446744073709551615\n"
      "f32: 1.5\n"
      "f64: -2.5e-1\n"
      "text: hello world\n"
      "color: green_blue\n");
  EXPECT_EQ(m.needed(), "yes");  // a string field takes any scalar as text
  EXPECT_TRUE(m.flag());
  EXPECT_EQ(m.i32(), -2147483648LL);
  EXPECT_EQ(m.i64(), 9223372036854775807LL);
  EXPECT_EQ(m.u32(), 4294967295u);
  EXPECT_EQ(m.u64(), 18446744073709551615ull);
  EXPECT_FLOAT_EQ(m.f32(), 1.5f);
  EXPECT_DOUBLE_EQ(m.f64(), -0.25);
  EXPECT_EQ(m.text(), "hello world");
  EXPECT_EQ(m.color(), config_test::COLOR_GREEN_BLUE);
}

TEST(YamlLoaderTest, AcceptsIntegerNotationsAndQuotedNumbers) {
  Everything m = ParseOk("needed: x\ni32: 0x1F\ni64: -0o17\nu32: \"42\"\nf64: 3\n");
  EXPECT_EQ(m.i32(), 31);
  EXPECT_EQ(m.i64(), -15);
  EXPECT_EQ(m.u32(), 42u);
  EXPECT_DOUBLE_EQ(m.f64(), 3.0);
}

TEST(YamlLoaderTest, IntegerRangeFollowsTheFieldType) {
  EXPECT_EQ(ParseOk("needed: x\ni64: -9223372036854775808\n").i64(), INT64_MIN);
  EXPECT_EQ(OneError("needed: x\ni64: 9223372036854775808\n"),
            "t.yaml:2:6: i64: integer 9223372036854775808 is out of range for int64 "
            "(-9223372036854775808 to 9223372036854775807)");
  EXPECT_EQ(OneError("needed: x\ni64: -9223372036854775809\n"),
            "t.yaml:2:6: i64: integer -9223372036854775809 is out of range for int64 "
            "(-9223372036854775808 to 9223372036854775807)");
  EXPECT_EQ(OneError("needed: x\ni32: 2147483648\n"),
            "t.yaml:2:6: i32: integer 2147483648 is out of range for int32 "
            "(-2147483648 to 2147483647)");
  EXPECT_EQ(OneError("needed: x\nu32: -1\n"),
            "t.yaml:2:6: u32: integer -1 is out of range for uint32 (0 to 4294967295)");
  EXPECT_EQ(OneError("needed: x\nu64: 99999999999999999999\n"),
            "t.yaml:2:6: u64: integer 99999999999999999999 is out of range for uint64 "
            "(0 to 18446744073709551615)");
  EXPECT_EQ(OneError("needed: x\nf32: 1e39\n"),
            "t.yaml:2:6: f32: number 1e39 is out of range for float");
}

TEST(YamlLoaderTest, WrongTypes) {
  EXPECT_EQ(OneError("needed: x\ni32: abc\n"), "t.yaml:2:6: i32: expected an integer, got 'abc'");
  EXPECT_EQ(OneError("needed: x\ni32: 1.5\n"), "t.yaml:2:6: i32: expected an integer, got '1.5'");
  EXPECT_EQ(OneError("needed: x\ni32: {a: 1}\n"),
            "t.yaml:2:6: i32: expected an integer, got a map");
  EXPECT_EQ(OneError("needed: x\ni32:\n"),
            "t.yaml:2:1: i32: expected an integer, got an empty value");
  EXPECT_EQ(OneError("needed: x\ntext: [a, b]\n"),
            "t.yaml:2:7: text: expected a string, got a sequence");
  EXPECT_EQ(OneError("needed: x\ndeep: [1, 2]\n"),
            "t.yaml:2:7: deep: expected a map, got a sequence");
  EXPECT_EQ(OneError("needed: x\ndeep: 3\n"), "t.yaml:2:7: deep: expected a map, got '3'");
  EXPECT_EQ(OneError("needed: x\nnumbers: 5\n"),
            "t.yaml:2:10: numbers: expected a sequence, got '5'");
  EXPECT_EQ(OneError("needed: x\nflag: yes\n"),
            "t.yaml:2:7: flag: expected true or false, got 'yes'");
  EXPECT_EQ(OneError("needed: x\nf64: 1.2.3\n"), "t.yaml:2:6: f64: expected a number, got '1.2.3'");
  EXPECT_EQ(OneError("needed: x\nf32: .nan\n"), "t.yaml:2:6: f32: expected a number, got NaN");
  EXPECT_EQ(OneError("needed: x\ncolor: purple\n"),
            "t.yaml:2:8: color: expected one of [red, green_blue], got 'purple'");
  EXPECT_EQ(OneError("- a\n- b\n"), "t.yaml:1:1: expected a map, got a sequence");
}

TEST(YamlLoaderTest, UnknownKeySuggestsTheClosestKey) {
  EXPECT_EQ(OneError("needed: x\nflga: true\n"),
            "t.yaml:2:1: flga: unknown key (did you mean 'flag'?)");
  EXPECT_EQ(OneError("needed: x\ndeep:\n  Ratio: 0.5\n"),
            "t.yaml:3:3: deep.Ratio: unknown key (did you mean 'ratio'?)");
  EXPECT_EQ(OneError("needed: x\ndeep:\n  inner-list: 1\n"),
            "t.yaml:3:3: deep.inner-list: unknown key (valid keys: inner, ratio)");
}

TEST(YamlLoaderTest, MissingRequiredKey) {
  EXPECT_EQ(OneError("flag: true\n"), "t.yaml:1:1: needed: missing required key");
  EXPECT_EQ(OneError(""), "t.yaml:1:1: needed: missing required key");
  // Inside a section the problem points at the section's first key.
  EXPECT_EQ(OneError("needed: x\nsection:\n  mode: slow\n"),
            "t.yaml:3:3: section.key: missing required key");
}

TEST(YamlLoaderTest, NumericRules) {
  EXPECT_EQ(OneError("needed: x\ndeep: {inner: {count: 11}}\n"),
            "t.yaml:2:23: deep.inner.count: must be <= 10, got 11");
  EXPECT_EQ(OneError("needed: x\ndeep: {inner: {count: -1}}\n"),
            "t.yaml:2:23: deep.inner.count: must be >= 0, got -1");
  EXPECT_EQ(OneError("needed: x\ndeep: {ratio: 0}\n"),
            "t.yaml:2:15: deep.ratio: must be > 0, got 0");
  EXPECT_EQ(OneError("needed: x\npositive: -0.5\n"),
            "t.yaml:2:11: positive: must be > 0, got -0.5");
  EXPECT_EQ(OneError("needed: x\nf64: .inf\n"), "t.yaml:2:6: f64: must be <= 1e+300, got .inf");
  EXPECT_EQ(OneError("needed: x\nnumbers: [1, 101, 2]\n"),
            "t.yaml:2:14: numbers[1]: must be <= 100, got 101");
  EXPECT_EQ(OneError("needed: x\ndepth: 20\n"),
            "t.yaml:2:8: depth: must be one of [18, 34, 50], got 20");
  EXPECT_EQ(ParseOk("needed: x\ndepth: 34\n").depth(), 34);
}

TEST(YamlLoaderTest, StringAndListRules) {
  EXPECT_EQ(OneError("needed: x\ntags: [a, c]\n"),
            "t.yaml:2:11: tags[1]: must be one of [a, b], got 'c'");
  EXPECT_EQ(OneError("needed: x\ntags: []\n"), "t.yaml:2:7: tags: must not be empty");
  EXPECT_EQ(OneError("needed: x\ntags: [a, \"\"]\n"), "t.yaml:2:11: tags[1]: must not be empty");
  EXPECT_EQ(OneError("needed: x\nsection: {key: \"\"}\n"),
            "t.yaml:2:16: section.key: must not be empty");
  EXPECT_EQ(OneError("needed: x\nsection: {key: k, mode: medium}\n"),
            "t.yaml:2:25: section.mode: must be one of [fast, slow], got 'medium'");
}

TEST(YamlLoaderTest, EnumsAcceptShortAndFullNames) {
  Everything m = ParseOk("needed: x\ncolor: COLOR_RED\ncolors: [green_blue, red]\n");
  EXPECT_EQ(m.color(), config_test::COLOR_RED);
  EXPECT_THAT(m.colors(), ElementsAre(config_test::COLOR_GREEN_BLUE, config_test::COLOR_RED));
}

TEST(YamlLoaderTest, MapFields) {
  Everything m = ParseOk(
      "needed: x\n"
      "counts: {a: 1, \"b.c\": 2}\n"
      "inners:\n"
      "  k:\n"
      "    count: 3\n");
  EXPECT_EQ(m.counts().at("a"), 1);
  EXPECT_EQ(m.counts().at("b.c"), 2);
  EXPECT_EQ(m.inners().at("k").count(), 3);
  EXPECT_EQ(m.inners().at("k").label(), "inner") << "defaults apply inside map values";

  EXPECT_EQ(OneError("needed: x\ncounts: {a: -1}\n"),
            "t.yaml:2:13: counts.a: must be >= 0, got -1");
  EXPECT_EQ(OneError("needed: x\ncounts: {\"x y\": -1}\n"),
            "t.yaml:2:17: counts[\"x y\"]: must be >= 0, got -1");
  EXPECT_EQ(OneError("needed: x\ncounts: [1]\n"),
            "t.yaml:2:9: counts: expected a map, got a sequence");
  EXPECT_EQ(OneError("needed: x\ninners: {k: {cout: 1}}\n"),
            "t.yaml:2:14: inners.k.cout: unknown key (did you mean 'count'?)");
  EXPECT_EQ(OneError("needed: x\ncounts:\n  a: 1\n  a: 2\n"),
            "t.yaml:4:3: counts.a: duplicate key (first defined at line 3)");
}

TEST(YamlLoaderTest, DuplicateKeys) {
  EXPECT_EQ(OneError("needed: x\ni32: 1\ni32: 2\n"),
            "t.yaml:3:1: i32: duplicate key (first defined at line 2)");
}

TEST(YamlLoaderTest, OneofAllowsOneMember) {
  EXPECT_EQ(ParseOk("needed: x\nby_name: n\n").by_name(), "n");
  EXPECT_EQ(OneError("needed: x\nby_count: 1\nby_name: n\n"),
            "t.yaml:3:1: by_name: conflicts with 'by_count' (only one of by_count, by_name may "
            "be set)");
}

TEST(YamlLoaderTest, DefaultsApplyIncludingAbsentSections) {
  Everything m = ParseOk("needed: x\n");
  EXPECT_EQ(m.depth(), 18);
  EXPECT_DOUBLE_EQ(m.positive(), 1.0);
  EXPECT_THAT(m.colors(), ElementsAre(config_test::COLOR_RED, config_test::COLOR_GREEN_BLUE));
  // An absent section without required keys gets all its defaults, recursively ...
  ASSERT_TRUE(m.has_deep());
  EXPECT_DOUBLE_EQ(m.deep().ratio(), 0.5);
  ASSERT_TRUE(m.deep().has_inner());
  EXPECT_EQ(m.deep().inner().count(), 7);
  EXPECT_EQ(m.deep().inner().label(), "inner");
  // ... a section with required keys stays unset, and recursive types stop.
  EXPECT_FALSE(m.has_section());
  EXPECT_FALSE(m.has_child());
  EXPECT_FALSE(m.has_maybe());
  EXPECT_TRUE(m.tags().empty());

  // Given keys win; the others still get defaults; `key:` with nothing means an empty section.
  Everything partial = ParseOk("needed: x\ndeep:\n  inner: {label: mine}\nsection: {key: k}\n");
  EXPECT_EQ(partial.deep().inner().label(), "mine");
  EXPECT_EQ(partial.deep().inner().count(), 7);
  EXPECT_DOUBLE_EQ(partial.deep().ratio(), 0.5);
  EXPECT_EQ(partial.section().mode(), "fast");
  Everything empty_section = ParseOk("needed: x\ndeep:\n");
  EXPECT_DOUBLE_EQ(empty_section.deep().ratio(), 0.5);
  // Elements of a repeated message get their defaults too.
  Everything list = ParseOk("needed: x\ninner_list: [{count: 1}, {}]\n");
  ASSERT_EQ(list.inner_list_size(), 2);
  EXPECT_EQ(list.inner_list(1).count(), 7);
  EXPECT_EQ(list.inner_list(0).label(), "inner");
}

TEST(YamlLoaderTest, RelativePathsResolveAgainstTheBaseDirectory) {
  Everything m = ParseOk("needed: x\nfile: certs/../ca.crt\nfiles: [a.txt, /abs/b.txt]\n");
  EXPECT_EQ(m.file(), "/base/dir/ca.crt");
  EXPECT_THAT(m.files(), ElementsAre("/base/dir/a.txt", "/abs/b.txt"));
  // Fields without `path: true` are left alone.
  EXPECT_EQ(ParseOk("needed: x\ntext: certs/ca.crt\n").text(), "certs/ca.crt");
  // Without a base directory, relative paths stay relative.
  Everything relative;
  ASSERT_TRUE(ParseYamlInto("needed: x\nfile: ca.crt\n", "t.yaml", {}, &relative).ok());
  EXPECT_EQ(relative.file(), "ca.crt");
}

TEST(YamlLoaderTest, SyntaxErrorNamesTheLine) {
  EXPECT_EQ(Errors("needed: x\ntags: [a, b\ni32: 3\n"),
            "t.yaml: 1 problem\nt.yaml:3:4: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(Errors("needed: x\n  i32: 2\n"),
            "t.yaml: 1 problem\nt.yaml:2:6: YAML syntax error: illegal map value");
}

TEST(YamlLoaderTest, OneDocumentPerFile) {
  EXPECT_EQ(OneError("needed: x\n---\nneeded: y\n"),
            "t.yaml:3:1: expected one YAML document, found 2");
}

TEST(YamlLoaderTest, ListsEveryProblemInDocumentOrder) {
  std::string errors = Errors(
      "i32: abc\n"          // 1: wrong type
      "deep:\n"             // 2
      "  ratio: 2\n"        // 3: above max
      "  inner:\n"          // 4
      "    cuont: 3\n"      // 5: unknown key with suggestion
      "tags: [a, z]\n"      // 6: not one of
      "section: {}\n"       // 7: missing required key inside
      "i32: 4\n"            // 8: duplicate key
      "counts: {a: x}\n");  // 9: wrong type in a map value; `needed` is missing
  EXPECT_EQ(errors,
            "t.yaml: 8 problems\n"
            "t.yaml:1:1: needed: missing required key\n"
            "t.yaml:1:6: i32: expected an integer, got 'abc'\n"
            "t.yaml:3:10: deep.ratio: must be <= 1, got 2\n"
            "t.yaml:5:5: deep.inner.cuont: unknown key (did you mean 'count'?)\n"
            "t.yaml:6:11: tags[1]: must be one of [a, b], got 'z'\n"
            "t.yaml:7:10: section.key: missing required key\n"
            "t.yaml:8:1: i32: duplicate key (first defined at line 1)\n"
            "t.yaml:9:13: counts.a: expected an integer, got 'x'");
}

TEST(YamlLoaderTest, CrossFieldIssuesArePlacedAtTheirKey) {
  CrossFieldCheck check = [](const google::protobuf::Message& message) {
    const auto& m = static_cast<const Everything&>(message);
    std::vector<ConfigIssue> issues;
    if (m.i32() > m.i64()) issues.push_back({"i32", "must be <= i64", {"i64"}});
    issues.push_back({"deep.ratio", "always reported"});
    return issues;
  };
  Everything m;
  absl::Status status = ParseYamlInto("needed: x\ni64: 1\ni32: 5\n", "t.yaml", {}, &m, check);
  // deep.ratio came from a default: the issue points at the closest written key (the root).
  EXPECT_EQ(status.message(),
            "t.yaml: 2 problems\n"
            "t.yaml:1:1: deep.ratio: always reported\n"
            "t.yaml:3:6: i32: must be <= i64");
  // An issue is dropped when a key it depends on already has a problem of its own.
  status = ParseYamlInto("needed: x\ni64: big\ni32: 5\n", "t.yaml", {}, &m, check);
  EXPECT_EQ(status.message(),
            "t.yaml: 2 problems\n"
            "t.yaml:1:1: deep.ratio: always reported\n"
            "t.yaml:2:6: i64: expected an integer, got 'big'");
}

TEST(YamlLoaderTest, BrokenSchemaDefaultsAreReported) {
  BrokenSchema m;
  absl::Status status = ParseYamlInto("both: x\n", "t.yaml", {}, &m);
  EXPECT_EQ(status.message(),
            "t.yaml: 3 problems\n"
            "t.yaml:1:1: not_a_number: invalid schema default 'abc': expected an integer, got "
            "'abc'\n"
            "t.yaml:1:1: too_big: invalid schema default '5': must be <= 3, got 5\n"
            "t.yaml:1:1: bad_yaml: invalid schema default '[unclosed': YAML syntax error: end of "
            "sequence flow not found");
}

class YamlFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fedjoint_config_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(YamlFileTest, LoadsAFileAndResolvesPathsAgainstItsFolder) {
  fs::path file = dir_ / "sub" / "c.yaml";
  std::ofstream(file) << "needed: x\nfile: ../certs/ca.crt\n";
  Everything m;
  ASSERT_TRUE(LoadYamlInto(file, &m).ok());
  EXPECT_EQ(m.file(), (dir_ / "certs" / "ca.crt").string());
}

TEST_F(YamlFileTest, ErrorsNameTheFileAsGiven) {
  fs::path file = dir_ / "c.yaml";
  std::ofstream(file) << "needed: x\ni32: q\n";
  Everything m;
  absl::Status status = LoadYamlInto(file, &m);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), file.string() + ": 1 problem\n" + file.string() +
                                  ":2:6: i32: expected an integer, got 'q'");
}

TEST_F(YamlFileTest, MissingFileIsNotFound) {
  Everything m;
  absl::Status status = LoadYamlInto(dir_ / "absent.yaml", &m);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            (dir_ / "absent.yaml").string() + ": cannot open: No such file or directory");
}

TEST(YamlWriterTest, OutputParsesBackToTheSameMessage) {
  Everything m = ParseOk(
      "needed: \"true\"\n"
      "flag: true\n"
      "i64: -9223372036854775808\n"
      "u64: 18446744073709551615\n"
      "f32: -.inf\n"
      "f64: 0.1\n"
      "text: \"a: b # c\\n'q' \\\"d\\\"\"\n"
      "color: red\n"
      "counts: {b: 2, a: 1}\n"
      "inners: {k: {count: 3}}\n"
      "numbers: [1, 2]\n"
      "tags: [a]\n"
      "section: {key: k}\n"
      "file: /abs/f\n"
      "by_name: \"\"\n"
      "maybe: 0\n"
      "inner_list: [{}, {label: \"*x\"}]\n");
  std::string yaml = ToYaml(m);
  Everything back;
  absl::Status status = ParseYamlInto(yaml, "printed.yaml", {}, &back);
  ASSERT_TRUE(status.ok()) << status << "\n" << yaml;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(m, back)) << yaml << "\nvs\n"
                                                                           << back.DebugString();
  EXPECT_THAT(yaml, HasSubstr("counts:\n  a: 1\n  b: 2\n")) << "map keys are sorted";
  EXPECT_THAT(yaml, HasSubstr("numbers: [1, 2]\n"));
  EXPECT_THAT(yaml, HasSubstr("maybe: 0\n")) << "set optional fields are printed";
}

}  // namespace
}  // namespace fedjoint::common::config
