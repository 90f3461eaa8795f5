import pytest

from fer_keras.labels import (
    CANONICAL_CLASSES,
    UnknownClassError,
    canonical_name,
    canonical_order,
    check_same_classes,
    output_columns,
)


@pytest.mark.parametrize(
    "given,expected",
    [("Happy", "happy"), ("happiness", "happy"), ("anger", "angry"), ("Sadness", "sad"),
     ("surprised", "surprise"), ("3_happy", "happy"), ("Fearful", "fear"), ("contempt", "contempt")],
)
def test_aliases_map_to_canonical_names(given, expected):
    assert canonical_name(given) == expected


def test_unknown_name_suggests_closest_and_says_where():
    with pytest.raises(UnknownClassError, match=r"'hapy'.*data/train/hapy.*Did you mean 'happy'"):
        canonical_name("hapy", where="data/train/hapy")


def test_canonical_order_ignores_given_order():
    assert canonical_order(["surprise", "angry", "happy"]) == ("angry", "happy", "surprise")
    assert canonical_order(CANONICAL_CLASSES[::-1]) == CANONICAL_CLASSES
    assert canonical_order([*CANONICAL_CLASSES, "contempt"])[1] == "contempt"


def test_class_set_mismatch_lists_both_sets():
    check_same_classes(["angry", "happy"], ["angry", "happy"], test_name="t")
    with pytest.raises(ValueError, match=r"missing in wild: \['happy'\].*extra in wild: \['sad'\]"):
        check_same_classes(["angry", "happy"], ["angry", "sad"], test_name="wild")


def test_output_columns_map_a_known_model_order_onto_a_canonical_set():
    assert output_columns(["sad", "angry", "happy"], ["angry", "happy", "sad"], test_name="t") == [1, 2, 0]
    assert output_columns(["happy", "angry"], ["happy", "angry"], test_name="t") == [0, 1]  # same order: as is
    with pytest.raises(ValueError, match=r"model \(angry, happy\) and wild \(happy, angry\).*canonical order"):
        output_columns(["angry", "happy"], ["happy", "angry"], test_name="wild")
