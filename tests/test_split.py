import pytest

from synthtext.data.split import split_by_actor
from synthtext.ops.errors import SynthTextError

CLIPS = [(f"{actor}_DFA_{emo}_XX", str(actor)) for actor in range(1001, 1021) for emo in ("ANG", "HAP", "SAD")]


def actors_of(ids):
    return {i.split("_")[0] for i in ids}


def test_actor_disjoint_and_complete():
    train, val = split_by_actor(CLIPS, 0.25, seed=0)
    assert not actors_of(train) & actors_of(val)
    assert sorted(train + val) == sorted(c for c, _ in CLIPS)
    assert len(actors_of(val)) == 5  # ceil(0.25 * 20)


def test_deterministic_and_order_independent():
    first = split_by_actor(CLIPS, 0.25, seed=7)
    assert split_by_actor(list(reversed(CLIPS)), 0.25, seed=7) == first
    assert split_by_actor(CLIPS, 0.25, seed=8) != first


def test_small_and_edge_cases():
    two = [("a1", "1001"), ("b1", "1002")]
    train, val = split_by_actor(two, 0.25, seed=0)
    assert len(actors_of(train)) == 1 and len(actors_of(val)) == 1  # at least one actor each side
    assert split_by_actor(two, 0.0, seed=0) == (["a1", "b1"], [])
    assert split_by_actor([("a1", "1001")], 0.5, seed=0) == (["a1"], [])
    with pytest.raises(SynthTextError):
        split_by_actor(two, 1.0, seed=0)
    with pytest.raises(SynthTextError, match="no aligned clips"):
        split_by_actor([], 0.25, seed=0)
