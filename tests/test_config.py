
import pytest

from fer_keras.config import CONFIG_DIR, ConfigError, RunConfig, load_config, make_config, read_yaml_mapping


def test_yaml_typo_names_the_key_and_suggests(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: resnet18\nbalanse: simple\n")
    with pytest.raises(ConfigError, match=r"unknown key 'balanse'.*did you mean 'balance'"):
        load_config(f)


def test_bad_value_is_reported_with_its_key():
    with pytest.raises(ConfigError, match=r"balance: .*got 'balanced'"):
        make_config({"balance": "balanced"})
    with pytest.raises(ConfigError, match=r"res: .*got 4"):
        make_config({"res": 4})


def test_unknown_model_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        make_config({"model": "resnet_18"})


def test_include_then_file_then_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("epochs: 5\nlr: 0.01\nres: 64\n")
    (tmp_path / "c.yaml").write_text("include: base.yaml\nepochs: 7\n")
    cfg = load_config(tmp_path / "c.yaml", {"res": 48, "seed": None})
    assert (cfg.epochs, cfg.lr, cfg.res, cfg.seed) == (7, 0.01, 48, 42)


def test_two_level_includes_and_non_mapping_are_rejected(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "c.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match="one level only"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "l.yaml")


def test_run_id_is_readable_and_stable():
    cfg = make_config({"model": "sequential_simple", "res": 48, "dataset": "fer2013", "balance": "simple"})
    assert cfg.resolved_run_id() == "sequential_simple_48_fer2013_simple_scratch_s42"
    assert make_config({"paper_faithful": True}).resolved_run_id().endswith("_paper")


def test_a_limited_run_has_its_own_id_so_it_never_overwrites_the_full_one():
    full = make_config({"model": "sequential_simple"})
    quick = make_config({"model": "sequential_simple", "limit_per_class": 50})
    assert quick.resolved_run_id() == full.resolved_run_id() + "_lim50" and quick.run_dir() != full.run_dir()
    assert make_config({"limit_per_class": 8, "folds": 5, "fold": 2}).resolved_run_id().endswith("_s42_lim8_f2")


def test_shipped_configs_validate():
    from fer_keras.config import CONFIG_DIR

    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert files
    for f in files:
        load_config(f)


def test_crossdomain_can_be_switched_off_from_the_command_line():
    from fer_keras.train.cli import overrides_from, parser

    cfg = make_config(overrides_from(parser().parse_args(["--crossdomain", "null", "--lr", "1e-3"])))
    assert cfg.crossdomain is None and cfg.lr == 1e-3


def test_demo_config_states_only_what_differs():
    # configs/demo.yaml overrides the protocol (its include) or RunConfig; a key equal to what it overrides
    # is a second copy of a default that would silently drift.
    demo = CONFIG_DIR / "demo.yaml"
    own = read_yaml_mapping(demo)
    base = read_yaml_mapping(demo.parent / own.pop("include")) if "include" in own else {}
    for key, value in own.items():
        default = base[key] if key in base else RunConfig.model_fields[key].default
        assert make_config({key: value}).model_dump()[key] != make_config({key: default}).model_dump()[key], \
            f"demo.yaml restates {key}: {value!r}"
