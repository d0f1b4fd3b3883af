"""High quality, the full u2net per photo, for a person (web use case) and an operator (CLI).

Cases that run the full model need it provisioned (`cutout-setup --model u2net`, never by
default) and are skipped, saying so, where it is absent; refusals without it always run.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos
from sqlmodel import select

from app.cli import cutout as cli
from app.db import reading
from app.models.jobs import CutoutJob
from app.services.billing.pricing import Feature
from app.services.imaging import engine, pipeline
from app.services.jobs.storage import JobFile
from app.usecases import cutouts
from app.usecases.accounts import NotAllowed
from tests.conftest import confirmed_account

MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
needs_u2net = pytest.mark.skipif(
    not (MODELS_DIR / "u2net.onnx").is_file(),
    reason="u2net not provisioned here (cutout-setup --model u2net)",
)


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def without_u2net(tmp_path: Path, settings):  # type: ignore[no-untyped-def]
    """Settings whose models folder holds only the default model."""
    models = tmp_path / "models-default-only"
    models.mkdir()
    (models / "u2netp.onnx").symlink_to(MODELS_DIR / "u2netp.onnx")
    return settings.model_copy(update={"models_dir": models})


def test_a_request_for_high_quality_runs_the_full_u2net():
    assert pipeline.model_name(pipeline.CutoutRequest(), "u2netp") == "u2netp"
    asked = pipeline.CutoutRequest(feature=Feature.background_removal, high_quality=True)
    assert pipeline.model_name(asked, "u2netp") == "u2net"


def test_high_quality_is_refused_where_the_model_is_absent(db, clock, without_u2net):
    owner = confirmed_account(db, clock, without_u2net, "a@example.com").id
    assert not cutouts.high_quality_available(without_u2net)
    with pytest.raises(NotAllowed, match="High quality is not available"):
        cutouts.submit_photo(
            db=db,
            settings=without_u2net,
            clock=clock,
            account_id=owner,
            filename="astronaut.jpg",
            data=jpeg(photos.astronaut()),
            high_quality=True,
        )
    with reading(db) as session:
        assert session.exec(select(CutoutJob)).first() is None  # nothing stored


def test_cli_names_the_command_that_provisions_u2net(tmp_path, without_u2net, capsys):
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg(photos.coffee()))
    models = str(without_u2net.models_dir)
    code = cli.main(["remove", str(source), str(tmp_path / "out.png"), "--model", "u2net",
                     "--models-dir", models])  # fmt: skip
    assert code == 1
    assert "cutout-setup --model u2net" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@needs_u2net
def test_a_persons_high_quality_photo_runs_u2net_and_is_recorded(db, settings, clock):
    owner = confirmed_account(db, clock, settings, "a@example.com").id
    assert cutouts.high_quality_available(settings)
    view = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=owner,
        filename="chelsea.jpg",
        data=jpeg(photos.chelsea()),
        high_quality=True,
    )
    assert view.model == "u2net"
    done = cutouts.process_cutout(
        db=db, settings=settings, clock=clock, account_id=owner, job_id=view.id
    )
    assert done.status == "done" and done.model == "u2net"
    path, _ = cutouts.result_file(
        db=db, settings=settings, account_id=owner, job_id=view.id, kind=JobFile.cutout
    )
    alpha = np.asarray(Image.open(path))[..., 3]
    assert ((alpha == 0) | (alpha == 255)).mean() >= 0.95
    # The full model's alpha exactly, which is not u2netp's on this photo.
    decoded = Image.open(io.BytesIO(jpeg(photos.chelsea())))
    u2net = engine.predict_alpha(engine.load_session(MODELS_DIR, "u2net", 2), decoded)
    u2netp = engine.predict_alpha(engine.load_session(MODELS_DIR, "u2netp", 2), decoded)
    assert np.array_equal(alpha, u2net)
    assert not np.array_equal(alpha, u2netp)


@needs_u2net
def test_cli_batch_with_u2net_gives_opaque_cutouts(tmp_path):
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    for name in ("astronaut", "coffee"):
        (inbox / f"{name}.jpg").write_bytes(jpeg(getattr(photos, name)()))
    code = cli.main(["batch", str(inbox), str(outbox), "--model", "u2net", "--models-dir",
                     str(MODELS_DIR)])  # fmt: skip
    assert code == 0
    for name in ("astronaut", "coffee"):
        alpha = np.asarray(Image.open(outbox / f"{name}.png"))[..., 3]
        assert ((alpha == 0) | (alpha == 255)).mean() >= 0.95
        assert (alpha == 255).mean() > 0.1
