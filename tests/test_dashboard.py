"""The dashboard receives more than scalars: read back from TensorBoard's event files (W&B's offline run directory is
checked in test_logging.py), a one-epoch run logs the config, the dataset's inspect summary, the alignment-by-layer plot, the
per-participant alignment table (with the numbers summary.json has) and, where targets have a location (parcels of
an MNI atlas), the brain maps before and after training."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from braintune.commands.train import train
from braintune.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
        "alignment.after_training=true", "alignment.layers=[1]", "alignment.delays=[1,2]", "alignment.cache_dir=null",
        "backbone.config.num_hidden_layers=1"]


def _friends_with_mni_atlas(root: Path) -> Path:
    """One participant of the synthetic Friends layout, its 12-parcel atlas replaced by slabs on an MNI grid."""
    from braintune.data.formats.synthetic_friends import FriendsSpec, write_friends_dataset

    write_friends_dataset(root, FriendsSpec(participants=1, episodes=2, episode_seconds=24.0, targets=[12],
                                            movie10=False))
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-100, -132, -78]
    slabs = (np.indices((25, 30, 25))[1] * 12 // 30 + 1).astype(np.int16)
    for atlas in root.glob("fmri/*/atlas/*.nii.gz"):
        nib.save(nib.Nifti1Image(slabs, affine), atlas)
    return root


def test_tensorboard_gets_pictures_tables_config_and_dataset(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = _friends_with_mni_atlas(tmp_path / "friends")
    out = tmp_path / "run"
    summary = train(load_config(ROOT / "configs" / "demo.yaml", TINY + [
        f"data.root={root}", "data.format=algonauts", "data.val_runs=[s06e01b]", "data.heldout_participants=[]",
        "logger.kind=tensorboard", f"out_dir={out}"]))
    events = EventAccumulator(str(out / "logs" / "version_0"), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    for key in ("alignment/by_layer/before", "alignment/by_layer/after", "brain_maps/before/r_map_sub-01_surface",
                "brain_maps/after/r_map_sub-01_glass"):
        assert key in tags["images"], key
    image = events.Images("brain_maps/after/r_map_sub-01_surface")[0]
    assert image.width == 1200 and image.height == 340  # the 4-panel inflated-surface picture
    texts = {t: events.Tensors(t)[-1].tensor_proto.string_val[0].decode() for t in tags["tensors"]}
    after = summary["alignment"]["after"]
    table = texts["alignment/table/after/text_summary"]
    assert f"| after | tuned | sub-01 | {after['layer']} | {after['participants']['sub-01']['mean_r']:.4f} |" in table
    assert "data:" in texts["run/config/text_summary"] and "format: algonauts" in texts["run/config/text_summary"]
    assert texts["dataset/participants/text_summary"].endswith("| sub-01 | 12 | 4 |")
    assert '"format": "algonauts"' in texts["dataset/inspect/text_summary"]
    scalar = events.Scalars("alignment/after/tuned/mean_r")[-1].value
    assert np.isclose(scalar, after["mean_r"], atol=1e-6)
    assert "brain_maps/after/r_map_sub-01_surface.png" in summary["brain_maps"]["after"]["sub-01"]["files"]

