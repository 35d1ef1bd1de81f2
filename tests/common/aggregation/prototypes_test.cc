#include "common/aggregation/prototypes.h"

#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fedjoint::common::aggregation {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::HasSubstr;

TEST(PrototypeAveragerTest, CountWeightedMeanNormalizedPerDomainAndScale) {
  PrototypeAverager avg;
  std::vector<std::string> knee = {"knee"};
  // Two knee sites: (1,0) with 1 slice and (0,1) with 3 slices -> mean (0.25, 0.75) -> unit.
  ASSERT_TRUE(avg.Add("a", knee, std::vector<Prototype>{{"knee", 0, {1, 0}, 1}}).ok());
  ASSERT_TRUE(avg.Add("b", knee, std::vector<Prototype>{{"knee", 0, {0, 1}, 3}}).ok());
  std::vector<std::string> ankle = {"ankle"};
  ASSERT_TRUE(avg.Add("c", ankle, std::vector<Prototype>{{"ankle", 0, {0, 2}, 5}}).ok());
  auto out = avg.Finalize();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].domain, "ankle");
  EXPECT_THAT(out[0].values, ElementsAre(0.f, 1.f));
  EXPECT_EQ(out[1].domain, "knee");
  EXPECT_EQ(out[1].count, 4);
  const float n = std::sqrt(0.25f * 0.25f + 0.75f * 0.75f);
  EXPECT_THAT(out[1].values, ElementsAre(FloatNear(0.25f / n, 1e-6), FloatNear(0.75f / n, 1e-6)));
}

TEST(PrototypeAveragerTest, RefusesForeignDomainAndBadValuesAtomically) {
  PrototypeAverager avg;
  std::vector<std::string> knee = {"knee"};
  auto foreign =
      avg.Add("a", knee, std::vector<Prototype>{{"knee", 0, {1, 0}, 1}, {"ankle", 0, {1, 0}, 1}});
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.message(),
            "prototypes from site 'a': domain 'ankle' is not a joint the site holds");
  EXPECT_TRUE(avg.Finalize().empty()) << "nothing added from a refused batch";
  auto nan = avg.Add("a", knee, std::vector<Prototype>{{"knee", 1, {NAN, 0}, 1}});
  EXPECT_THAT(std::string(nan.message()), HasSubstr("contains NaN or infinite values"));
  ASSERT_TRUE(avg.Add("a", knee, std::vector<Prototype>{{"knee", 0, {1, 0}, 1}}).ok());
  auto size = avg.Add("b", knee, std::vector<Prototype>{{"knee", 0, {1, 0, 0}, 1}});
  EXPECT_THAT(std::string(size.message()), HasSubstr("scale 0 has size 3, expected 2"));
  auto count = avg.Add("b", knee, std::vector<Prototype>{{"knee", 0, {1, 0}, 0}});
  EXPECT_THAT(std::string(count.message()), HasSubstr("has count 0"));
}

}  // namespace
}  // namespace fedjoint::common::aggregation
