"""Config schema: YAML + dotted overrides -> typed Config; every problem reported at once; shipped configs load."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from braintune.config import Config, ConfigError, from_dict, load_config, save_config, to_dict

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


def _write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_yaml_and_dotted_overrides(tmp_path):
    path = _write(tmp_path, {"out_dir": "runs/a", "data": {"batch_size": 3}, "trainer": {"max_epochs": 7}})
    cfg = load_config(path, ["trainer.max_epochs=2", "optim.head_lr=0.5", "data.participants=[UTS01,UTS02]",
                             "backbone.config.hidden_size=32"])
    assert isinstance(cfg, Config)
    assert cfg.out_dir == "runs/a"
    assert cfg.data.batch_size == 3  # from the file
    assert cfg.trainer.max_epochs == 2  # override wins over the file
    assert cfg.optim.head_lr == 0.5
    assert cfg.data.participants == ["UTS01", "UTS02"]
    assert cfg.backbone.config == {"hidden_size": 32}
    assert cfg.pooling.window_s == 2.0  # untouched default


def test_unknown_keys_all_listed_with_allowed(tmp_path):
    path = _write(tmp_path, {"bogus_top": 1, "data": {"batchsize": 2}, "trainer": {"max_epoch": 3}})
    with pytest.raises(ConfigError) as err:
        load_config(path, ["optim.lr=1", "nonsense=2"])
    msg = str(err.value)
    for key in ("bogus_top", "data.batchsize", "trainer.max_epoch", "optim.lr", "nonsense"):
        assert f"'{key}'" in msg, key
    assert "batch_size" in msg and "max_epochs" in msg and "backbone_lr" in msg  # what is allowed
    assert "top level" in msg


def test_bad_types_and_bad_choices_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["trainer.max_epochs=many", "data.batch_size=[1,2]"])
    msg = str(err.value)
    assert "trainer.max_epochs" in msg and "data.batch_size" in msg
    with pytest.raises(ConfigError) as err:
        load_config(None, ["loss.name=huber", "pooling.combine=max"])
    msg = str(err.value)
    assert "'loss.name' is 'huber'" in msg and "pearson" in msg
    assert "'pooling.combine' is 'max'" in msg and "concat" in msg


def test_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["trainer.max_epochs"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="both in"):
        load_config(None, ["data.participants=[UTS01]", "data.heldout_participants=[UTS01]"])


def test_save_then_load_round_trips(tmp_path):
    cfg = load_config(None, ["trainer.max_epochs=3", "data.test_runs=[a,b]", "backbone.config.hidden_size=16",
                             "alignment.alphas=[1.0,10.0]", "head.kind=low_rank"])
    path = save_config(cfg, tmp_path / "sub" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert from_dict(to_dict(cfg)) == cfg


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="head.knd"):
        from_dict({"head": {"knd": "shared"}})


def test_there_are_shipped_configs():
    assert any(p.name == "demo.yaml" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.out_dir


def test_speed_and_memory_keys_are_checked_up_front():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["trainer.max_memory_gib=0", "speed.cnn_cache_gib=-1", "speed.pos_conv=fast"])
    msg = str(err.value)
    assert "'trainer.max_memory_gib' is 0.0" in msg and "'speed.cnn_cache_gib' is -1.0" in msg
    assert "'speed.pos_conv' is 'fast'" in msg and "unfold" in msg
