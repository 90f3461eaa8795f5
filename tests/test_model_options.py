"""Every model's options are a declared schema (catalog.py), checked at config and grid time, the one
source of their defaults."""

import inspect

import pytest
import yaml

from fer_keras.config import ConfigError, load_config, make_config
from fer_keras.grid import __main__ as grid_cli
from fer_keras.registry import OptionError, build_model, get_spec, list_models

#: Keywords every builder takes from build_model itself; anything else must be a declared option.
STANDARD = {"pretrain", "pooling", "weights_dir", "paper_faithful"}


@pytest.mark.parametrize("name", list_models())
def test_builders_take_the_declared_options_without_defaults(name):
    # Cheap: inspects the builder's signature, builds nothing. The schema is the only source of defaults:
    # a builder declares each option as a required keyword, so build_model must pass it.
    spec = get_spec(name)
    params = inspect.signature(spec.load_builder()).parameters
    keywords = {k: p for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in STANDARD}
    assert set(keywords) == set(spec.options), f"{name}: builder keywords differ from the declared options"
    defaulted = [k for k, p in keywords.items() if p.default is not inspect.Parameter.empty]
    assert not defaulted, f"{name}: options with a builder default {defaulted}; the catalog holds defaults"
    assert spec.resolve_options({}) == {k: o.default for k, o in spec.options.items()}


def test_schema_defaults_build_a_small_model():
    spec = get_spec("vgg_lite")
    assert build_model("vgg_lite", 48, 7).count_params() == spec.params[48]  # the registered model, from the schema


def _config_file(tmp_path, model, options):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": model, "model_options": options}))
    return path


def test_unknown_option_names_model_key_closest_and_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_config_file(tmp_path, "vgg_lite", {"widht": 64}))
    message = str(err.value)
    assert "\n" not in message
    assert "'vgg_lite' has no option 'widht'; did you mean 'width'? Valid options: dropout, width" in message


@pytest.mark.parametrize("options,expected", [
    ({"width": "wide"}, r"'vgg_lite', option 'width'.*valid integer.*\(got 'wide'\)"),
    ({"width": 4}, r"option 'width'.*greater than or equal to 8 \(got 4\)"),
    ({"dropout": 1.5}, r"option 'dropout'.*less than 1 \(got 1.5\)"),
])
def test_wrong_type_or_range_is_a_clear_config_error(tmp_path, options, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_config_file(tmp_path, "vgg_lite", options))


def test_a_model_without_options_rejects_any():
    with pytest.raises(ConfigError, match="model 'resnet18' takes no options, got 'width'"):
        make_config({"model": "resnet18", "model_options": {"width": 64}})


def test_valid_options_are_kept_as_written_and_resolved_with_defaults():
    cfg = make_config({"model": "resmasking_net", "model_options": {"stage_blocks": [1, 1, 1, 1]}})
    assert cfg.model_options == {"stage_blocks": [1, 1, 1, 1]}  # the saved config and run id are unchanged
    assert cfg.resolved_options() == {"dropout": 0.4, "mask_growth": 2, "stage_blocks": (1, 1, 1, 1)}
    with pytest.raises(ConfigError, match="option 'stage_blocks'"):
        make_config({"model": "resmasking_net", "model_options": {"stage_blocks": [1, 1, 1]}})


def test_build_model_checks_options_before_building():
    with pytest.raises(OptionError, match="did you mean 'margin'"):
        build_model("tlf_resnet18", 32, marign=0.3)


def test_grid_dry_run_rejects_a_bad_option(tmp_path, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "fixed": {"out": str(tmp_path / "runs"), "crossdomain": None, "model": "vgg_lite",
                  "model_options": {"widht": 64}},
        "grid": {"seed": [1, 2]},
    }))
    assert grid_cli.main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "has no option 'widht'; did you mean 'width'?" in err
    assert not (tmp_path / "runs").exists()
