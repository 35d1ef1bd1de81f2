#include "common/metrics/metric_table.h"

#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// femur over three subjects: Dice 0.9, 0.8, 0.7 → mean 0.8, sd sqrt(((0.1)² + 0 + (0.1)²)/2) = 0.1;
// HD95 2, 4, inf → 3 ± 1.414 over the finite two, 1 inf; ASSD 1, 1, inf → 1 ± 0.
// patella in one subject only, absent from both prediction and truth: NaN distances.
MetricTable Filled() {
  MetricTable table;
  EXPECT_TRUE(table.Add({"s01", "femur", 0.9, 2.0, 1.0}).ok());
  EXPECT_TRUE(table.Add({"s02", "femur", 0.8, 4.0, 1.0}).ok());
  EXPECT_TRUE(table.Add({"s03", "femur", 0.7, kInf, kInf}).ok());
  EXPECT_TRUE(table.Add({"s01", "patella", 1.0, kNaN, kNaN}).ok());
  return table;
}

TEST(MetricTableTest, AggregatesFiniteValuesAndCountsTheRest) {
  const std::vector<StructureSummary> summary = Filled().Aggregate();
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[0].structure, "femur");
  EXPECT_EQ(summary[0].subjects, 3);
  EXPECT_NEAR(summary[0].dice.mean, 0.8, 1e-12);
  EXPECT_NEAR(summary[0].dice.sd, 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(summary[0].hd95.mean, 3.0);
  EXPECT_DOUBLE_EQ(summary[0].hd95.sd, std::sqrt(2.0));
  EXPECT_EQ(summary[0].hd95.finite, 2);
  EXPECT_EQ(summary[0].hd95.inf, 1);
  EXPECT_EQ(summary[1].structure, "patella");
  EXPECT_EQ(summary[1].dice.mean, 1.0);
  EXPECT_TRUE(std::isnan(summary[1].dice.sd));
  EXPECT_TRUE(std::isnan(summary[1].hd95.mean));
  EXPECT_EQ(summary[1].hd95.nan, 1);
}

TEST(MetricTableTest, Csv) {
  EXPECT_EQ(Filled().ToCsv(),
            "subject,structure,dice,hd95_mm,assd_mm\n"
            "s01,femur,0.9,2,1\n"
            "s02,femur,0.8,4,1\n"
            "s03,femur,0.7,inf,inf\n"
            "s01,patella,1,nan,nan\n");
  MetricTable quoted;
  ASSERT_TRUE(quoted.Add({"site \"A\", 7", "tibia", 0.5, 1.25, 0.5}).ok());
  EXPECT_EQ(quoted.ToCsv(),
            "subject,structure,dice,hd95_mm,assd_mm\n"
            "\"site \"\"A\"\", 7\",tibia,0.5,1.25,0.5\n");
}

TEST(MetricTableTest, Markdown) {
  EXPECT_EQ(Filled().ToMarkdown(),
            "| structure | subjects | Dice | HD95 (mm) | ASSD (mm) |\n"
            "| --- | ---: | --- | --- | --- |\n"
            "| femur | 3 | 0.800 ± 0.100 | 3.00 ± 1.41 (1 inf) | 1.00 ± 0.00 (1 inf) |\n"
            "| patella | 1 | 1.000 | n/a (1 nan) | n/a (1 nan) |\n");
}

TEST(MetricTableTest, RejectsDuplicatesAndResets) {
  MetricTable table = Filled();
  const absl::Status status = table.Add({"s02", "femur", 0.1, 1, 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "metric table: subject 's02' structure 'femur' is already recorded");
  EXPECT_EQ(table.rows().size(), 4u);
  table.Reset();
  EXPECT_TRUE(table.rows().empty());
  EXPECT_TRUE(table.Aggregate().empty());
  EXPECT_TRUE(table.Add({"s02", "femur", 0.1, 1, 1}).ok());
}

TEST(MetricTableTest, AddSubjectTakesStructureMetrics) {
  StructureMetrics femur;
  femur.structure = "femur";
  femur.dice = 0.75;
  femur.hd95 = 1.5;
  femur.assd = 0.25;
  MetricTable table;
  ASSERT_TRUE(table.AddSubject("s09", std::vector<StructureMetrics>{femur}).ok());
  EXPECT_EQ(table.ToCsv(),
            "subject,structure,dice,hd95_mm,assd_mm\n"
            "s09,femur,0.75,1.5,0.25\n");
}

}  // namespace
}  // namespace fedjoint::common::metrics
