"""A Kafka cluster id never starts with "-": kafka-storage format would read `-t -abc…` as an
option and fail (seen once in the full suite: 1 id in 64 did)."""

from kizashi.tools.localkafka import new_cluster_id


def test_cluster_ids_are_kafkas_form_and_never_look_like_an_option() -> None:
    ids = [new_cluster_id() for _ in range(5_000)]  # ~78 would start with "-" by chance
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
