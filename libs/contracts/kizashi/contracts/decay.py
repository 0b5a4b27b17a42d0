"""The clock of the usage counters: scoring decays usage_7d and usage_28d with these mean
lives, and triggers decays them the same way to know when a silent account's trend crosses a
threshold. Both must agree, so the numbers live here rather than in either service."""

DAY_S = 86_400.0
MEAN_LIFE_7D_S = 7 * DAY_S
MEAN_LIFE_28D_S = 28 * DAY_S
