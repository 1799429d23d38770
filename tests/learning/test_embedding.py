"""The quick model's features computed ahead: the embed job an import queues, the ONNX Runtime
path that fills the cache (the same features as torch's), and a quick retrain that then reads
features only (no image decoded, no serving graph exported)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from sqlalchemy import select

from supervising_ui import images
from supervising_ui.extensions import db
from supervising_ui.importing import runner
from supervising_ui.importing.sources import Candidate, ImportPlan
from supervising_ui.learning import embedding, triggers
from supervising_ui.learning.predictions import embedding_cache_dir
from supervising_ui.ml import Record, TrainConfig
from supervising_ui.ml.backbones import load_backbone
from supervising_ui.ml.data import Preprocessing
from supervising_ui.ml.embeddings import embed_records, feature_cache
from supervising_ui.ml.precompute import FROZEN_FILE, precompute_features
from supervising_ui.models import Image, Job, ModelVersion, Project
from supervising_ui.projects.service import create_project

from ..helpers import LOOP_CLASSES, add_labels, generated_png


def quick_cache(app, project):
    """The embedding cache that the project's quick retrain reads, and its views."""
    config = embedding.training_config("quick", {}, project.class_names,
                                       project.color_input).resolved()
    preprocessing = Preprocessing(224, "tf", config.stretch)
    return feature_cache(embedding_cache_dir(), config.backbone, preprocessing, config.weights,
                         config.top_blocks), list(range(config.tta_views))


def test_an_import_queues_an_embed_job_that_caches_every_image(app, users, tmp_path):
    app.config.update(EMBED_AT_IMPORT=1, CACHE_DIR=str(tmp_path / "cache"))
    with app.app_context():
        project = create_project("Embedded", classes=LOOP_CLASSES)
        project.group_column, project.retrain_every = "source_id", 0
        db.session.commit()
        plan = ImportPlan([Candidate(f"img{index:03d}.png",
                                     lambda index=index: generated_png(LOOP_CLASSES[index % 2], index),
                                     {"source_id": f"obs{index // 4}",
                                      "truth": LOOP_CLASSES[index % 2]}, None)
                           for index in range(24)])
        report = runner.run_import(project, plan, user_id=users["ada"])
        runner.tell_images_added(project.id, report.added, users["ada"])  # as the import job does
        job = db.session.scalar(select(Job).where(Job.kind == embedding.JOB_KIND))
        assert job.state == "done", job.error
        assert job.result["embedded"] == 24 and job.result["images"] == 24
        cache, views = quick_cache(app, project)
        assert (cache.root / FROZEN_FILE).is_file()
        hashes = db.session.scalars(select(Image.content_hash)).all()
        assert all(cache.path(digest, view).is_file() for digest in hashes for view in views)
        again = embedding.run_embed(job, type("Quiet", (), {"progress": lambda *a: None,
                                                            "log": lambda *a: None})())
        assert again["embedded"] == 0, "a second run computes nothing"

        add_labels(project.id, users["lee"], 20)
        with pytest.MonkeyPatch.context() as patch:
            def refuse(*args, **kwargs):
                raise AssertionError("an image was decoded")
            patch.setattr(PILImage, "open", refuse)
            patch.setattr(images, "open_file", refuse)
            retrain = triggers.request_retrain(db.session.get(Project, project.id))
        assert retrain.state == "done", retrain.error
        assert "embedded 0 of 24 images" in retrain.log
        version = db.session.get(ModelVersion, retrain.model_version_id)
        assert version.is_serving
        assert not (Path(version.path) / "model.onnx").exists(), \
            "all features cached: no serving graph was exported"


def test_no_embed_job_when_switched_off(app, users):
    with app.app_context():  # the tests' app: EMBED_AT_IMPORT 0
        project = create_project("Plain", classes=LOOP_CLASSES)
        assert embedding.embed_new_images(project.id, 5, users["ada"]) is None
        assert db.session.scalar(select(Job).where(Job.kind == embedding.JOB_KIND)) is None


def test_a_cold_quick_retrain_embeds_every_image_first(app, users, tmp_path):
    """Nothing cached: the retrain's first step computes every image's features and says so."""
    from ..helpers import make_stored_project
    app.config["CACHE_DIR"] = str(tmp_path / "cache")
    with app.app_context():
        project_id = make_stored_project(app, count=16)
        add_labels(project_id, users["lee"], 12)
        job = triggers.request_retrain(db.session.get(Project, project_id))
        assert job.state == "done", job.error
        assert "embedded 16 of 16 images" in job.log
        version = db.session.get(ModelVersion, job.model_version_id)
        config = json.loads((Path(version.path) / "config.json").read_text())
        assert config["train_config"]["top_blocks"] == 0, "the app's quick model: the head alone"


@pytest.mark.parametrize("top_blocks", [0, 1])
def test_onnx_features_are_torch_features(tmp_path, top_blocks):
    """What precompute_features caches is what the torch path computes (float rounding apart)."""
    paths = []
    for index in range(5):
        path = tmp_path / f"img{index}.png"
        path.write_bytes(generated_png(LOOP_CLASSES[index % 2], index))
        paths.append(str(path))
    config = TrainConfig(mode="head", top_blocks=top_blocks, tta_views=2)
    cache_dir = tmp_path / "cache"
    assert precompute_features([Record(p) for p in paths], config, cache_dir, batch_size=3) == 5
    assert precompute_features([Record(p) for p in paths], config, cache_dir) == 0
    resolved = config.resolved()
    preprocessing = Preprocessing(224, "tf", resolved.stretch)
    cache = feature_cache(cache_dir, "efficientnet_lite0", preprocessing, None, top_blocks)
    cached = embed_records(None, [Record(p) for p in paths], preprocessing, [0, 1], cache)
    from supervising_ui.ml.backbones import Classifier, build_head, frozen_and_trained
    backbone = load_backbone("efficientnet_lite0")
    frozen, _ = frozen_and_trained(Classifier(backbone, build_head(1280, 2)), top_blocks)
    computed = embed_records(frozen, [Record(p) for p in paths], preprocessing, [0, 1])
    tolerance = 2e-3 if top_blocks else 1e-4  # activations are cached as float16
    assert cached.shape == computed.shape
    assert np.allclose(cached.float().numpy(), computed.float().numpy(),
                       atol=tolerance * float(torch.max(torch.abs(computed))), rtol=0)


def test_cached_files_read_as_numpy_writes_them(tmp_path):
    """read_npy's fast path gives np.load's arrays; other headers still load through np.load."""
    import io

    from supervising_ui.ml.embeddings import EmbeddingCache, read_npy
    arrays = [np.arange(1280, dtype=np.float32), np.ones((192, 7, 7), np.float16) / 3,
              np.float64(2.5) * np.ones(()), np.zeros((2, 0), np.float32),
              np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))]
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, array)
        read = read_npy(buffer.getvalue())
        assert read.dtype == array.dtype and read.shape == array.shape
        assert np.array_equal(read, array)
    cache = EmbeddingCache(tmp_path, "key", np.float16)
    cache.put("ab" * 32, 0, np.linspace(0, 1, 10))
    assert cache.get("ab" * 32, 0).dtype == np.float16 and cache.get("ab" * 32, 1) is None


def test_the_worker_warms_up_and_a_lone_head_leaves_the_thread_count_as_it_was(app):
    from supervising_ui.jobs import queue as jobs
    from supervising_ui.ml.backbones import build_head
    from supervising_ui.ml.train import train_on_features
    assert embedding.warm_up in jobs.WARM_UPS
    embedding.warm_up()  # imports, once; a second call is quick
    assert not embedding._WARMING.locked()
    threads = torch.get_num_threads()
    head = build_head(1280, 2)
    config = TrainConfig(mode="head", top_blocks=0, epochs=2).resolved()
    train_on_features(head, torch.randn(1, 8, 1280), torch.tensor([0, 1] * 4), config,
                      torch.nn.CrossEntropyLoss(), torch.Generator().manual_seed(0))
    assert torch.get_num_threads() == threads
