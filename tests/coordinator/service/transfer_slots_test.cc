#include <vector>

#include <gtest/gtest.h>

#include "coordinator/service/federation_service.h"

namespace fedjoint::coordinator {
namespace {

struct Recorder : TransferSlots::Waiter {
  explicit Recorder(std::vector<int>* log, int id) : log(log), id(id) {}
  virtual ~Recorder() = default;
  void Granted() override { log->push_back(id); }
  std::vector<int>* log;
  int id;
};

TEST(TransferSlotsTest, FirstComeFirstServedWithinTheLimit) {
  TransferSlots slots(2);
  std::vector<int> granted;
  Recorder a(&granted, 1), b(&granted, 2), c(&granted, 3), d(&granted, 4);
  EXPECT_TRUE(slots.Acquire(&a));
  EXPECT_TRUE(slots.Acquire(&b));
  EXPECT_FALSE(slots.Acquire(&c));
  EXPECT_FALSE(slots.Acquire(&d));
  EXPECT_EQ(slots.waiting(), 2);
  slots.Release();  // a's slot goes to c
  EXPECT_EQ(granted, std::vector<int>{3});
  // d gives up while waiting: it leaves the line, and the next release frees the slot.
  EXPECT_TRUE(slots.Cancel(&d));
  EXPECT_FALSE(slots.Cancel(&d));
  slots.Release();
  EXPECT_EQ(granted, std::vector<int>{3});
  EXPECT_EQ(slots.waiting(), 0);
  Recorder e(&granted, 5);
  EXPECT_TRUE(slots.Acquire(&e));  // the freed slot
  Recorder f(&granted, 6);
  EXPECT_FALSE(slots.Acquire(&f));
}

TEST(TransferSlotsTest, ZeroMeansNoLimit) {
  TransferSlots slots(0);
  std::vector<int> granted;
  std::vector<Recorder> many;
  for (int i = 0; i < 100; ++i) many.emplace_back(&granted, i);
  for (auto& r : many) EXPECT_TRUE(slots.Acquire(&r));
  for (int i = 0; i < 100; ++i) slots.Release();
  EXPECT_TRUE(granted.empty());
}

}  // namespace
}  // namespace fedjoint::coordinator
