"""The editor's use cases on a real photo: strokes and cuts kept per job, a quick preview, and
exports that charge the priced options once, through the ledger, and nothing else."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from app.db import reading
from app.models.ledger import ReservationStatus, Wallet
from app.services.billing import ledger
from app.services.billing.ledger import InsufficientCredits
from app.services.imaging import aicut, retouch
from app.services.imaging.editor import BadParameter, EditSpec
from app.services.jobs import edit_files
from app.services.jobs.cutouts import JobNotFound
from app.services.jobs.storage import JobFile, file_path
from app.usecases import cutouts, editing
from app.usecases.accounts import NotAllowed
from tests.conftest import confirmed_account

ERASE_BOX = (20, 20, 120, 120)  # astronaut: part of the subject on the left


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture
def owner(db, clock, settings) -> int:  # type: ignore[no-untyped-def]
    return confirmed_account(db, clock, settings, "editor@example.com").id


@pytest.fixture
def job_id(db, settings, clock, owner) -> str:  # type: ignore[no-untyped-def]
    view = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=owner,
        filename="astronaut.jpg",
        data=jpeg(photos.astronaut()),
    )
    done = cutouts.process_cutout(
        db=db, settings=settings, clock=clock, account_id=owner, job_id=view.id
    )
    assert done.status == "done"
    return done.id


def available(db, clock, account_id: int) -> int:  # type: ignore[no-untyped-def]
    with reading(db) as session:
        return ledger.balance(session=session, clock=clock, account_id=account_id)[
            Wallet.web
        ].available


def export(db, settings, clock, owner, job_id, spec=None, expected=0):  # type: ignore[no-untyped-def]
    return editing.export_edit(
        db=db,
        settings=settings,
        clock=clock,
        account_id=owner,
        job_id=job_id,
        spec=spec or EditSpec(),
        expected_cost=expected,
    )


def exported_pixels(settings, job_id: str, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(Image.open(edit_files.path(settings, job_id, name)))


def cutout_alpha(settings, job_id: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(Image.open(file_path(settings, job_id, JobFile.cutout)))[..., 3]


def erase_square() -> retouch.Brush:
    left, top, right, bottom = ERASE_BOX
    points = tuple((float(x), float(y)) for y in range(top, bottom, 8) for x in (left, right))
    return retouch.Brush("erase", points, 10.0)


def add(db, settings, owner, job_id, step):  # type: ignore[no-untyped-def]
    return editing.add_step(db=db, settings=settings, account_id=owner, job_id=job_id, step=step)


def test_erase_stroke_exports_free_with_the_brushed_area_cleared(
    db, settings, clock, owner, job_id
) -> None:
    before = available(db, clock, owner)
    view = add(db, settings, owner, job_id, erase_square())
    assert view.steps == 1
    quote = editing.export_quote(
        db=db, settings=settings, clock=clock, account_id=owner, job_id=job_id
    )
    assert quote.cost == 0 and quote.unpaid == ()
    result = export(db, settings, clock, owner, job_id)
    assert result.charged == 0 and result.download_name == "astronaut-edited.png"
    alpha = exported_pixels(settings, job_id, result.name)[..., 3]
    left, top, right, bottom = ERASE_BOX
    assert (alpha[top + 5 : bottom - 5, left + 5 : right - 5] == 0).all()
    # Away from the stroke, the model's mask is untouched.
    model = cutout_alpha(settings, job_id)
    assert np.array_equal(alpha[:, 200:], model[:, 200:])
    assert available(db, clock, owner) == before


def test_ai_cut_is_charged_once_then_re_exports_are_free(
    db, settings, clock, owner, job_id
) -> None:
    add(db, settings, owner, job_id, retouch.Cut(aicut.Marks(box=(100, 0, 420, 512))))
    quote = editing.export_quote(
        db=db, settings=settings, clock=clock, account_id=owner, job_id=job_id
    )
    assert quote.cost == 500 and [f.value for f in quote.unpaid] == ["ai_cut"]
    before = available(db, clock, owner)

    jpeg_spec = EditSpec(background="color", color="#ff0000", format="jpeg", quality=90)
    result = export(db, settings, clock, owner, job_id, jpeg_spec, expected=500)
    assert result.charged == 500
    assert available(db, clock, owner) == before - 500
    pixels = exported_pixels(settings, job_id, result.name)
    assert pixels.shape == (512, 512, 3)
    # Outside the box everything is background: red (JPEG rounds a little).
    assert np.abs(pixels[:, :90].astype(int) - (255, 0, 0)).max() < 40

    again = export(db, settings, clock, owner, job_id, EditSpec(format="webp"), expected=0)
    assert again.charged == 0 and available(db, clock, owner) == before - 500
    # A second cut on the same photo is covered too.
    add(db, settings, owner, job_id, retouch.Cut(aicut.Marks(box=(90, 0, 430, 512))))
    assert (
        editing.export_quote(
            db=db, settings=settings, clock=clock, account_id=owner, job_id=job_id
        ).cost
        == 0
    )


def test_a_changed_price_is_refused_before_anything_is_charged(
    db, settings, clock, owner, job_id
) -> None:
    editing.set_hair(db=db, settings=settings, account_id=owner, job_id=job_id, on=True)
    before = available(db, clock, owner)
    with pytest.raises(editing.PriceChanged) as refused:
        export(db, settings, clock, owner, job_id, expected=0)  # shown before hair went on
    assert refused.value.cost == 500
    assert available(db, clock, owner) == before


def test_short_of_credits_charges_nothing_and_writes_nothing(
    db, settings, clock, owner, job_id
) -> None:
    from sqlmodel import update

    from app.db import writing
    from app.models.ledger import CreditLot

    with writing(db) as session:  # spend the trial down to 0.2 credits
        session.exec(update(CreditLot).where(CreditLot.account_id == owner).values(remaining=200))
    editing.set_hair(db=db, settings=settings, account_id=owner, job_id=job_id, on=True)
    with pytest.raises(InsufficientCredits):
        export(db, settings, clock, owner, job_id, expected=500)
    assert available(db, clock, owner) == 200
    assert not list(edit_files.folder(settings, job_id).glob("export*"))


def test_a_failed_export_releases_its_hold(db, settings, clock, owner, job_id) -> None:
    editing.set_hair(db=db, settings=settings, account_id=owner, job_id=job_id, on=True)
    before = available(db, clock, owner)
    # A photo background without an uploaded photo fails after the hold was taken.
    with pytest.raises(NotAllowed, match="background"):
        export(db, settings, clock, owner, job_id, EditSpec(background="image"), expected=500)
    history = edit_files.load_history(settings, job_id)
    with reading(db) as session:
        held = ledger.find_reservation(
            session=session, account_id=owner, key=f"edit:{job_id}:hair:{history.attempt}"
        )
        assert held is not None and held.status == ReservationStatus.released
    assert available(db, clock, owner) == before


def test_undo_and_redo_move_through_the_history(db, settings, clock, owner, job_id) -> None:
    add(db, settings, owner, job_id, erase_square())
    add(db, settings, owner, job_id, retouch.Cut(aicut.Marks(box=(100, 0, 420, 512))))
    move = editing.move_in_history
    view = move(db=db, settings=settings, account_id=owner, job_id=job_id, by=-1)
    assert (view.steps, view.redoable) == (1, 1)
    quote = editing.export_quote(
        db=db, settings=settings, clock=clock, account_id=owner, job_id=job_id
    )
    assert quote.cost == 0, "the undone AI Cut is not charged"
    view = move(db=db, settings=settings, account_id=owner, job_id=job_id, by=1)
    assert (view.steps, view.redoable) == (2, 0)
    move(db=db, settings=settings, account_id=owner, job_id=job_id, by=-1)
    view = add(db, settings, owner, job_id, erase_square())
    assert (view.steps, view.redoable) == (2, 0), "a new step drops what could be redone"


def test_preview_is_small_and_shows_the_stroke(db, settings, clock, owner, job_id) -> None:
    editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    add(db, settings, owner, job_id, erase_square())
    drawn = editing.render_preview(
        db=db, settings=settings, account_id=owner, job_id=job_id, spec=EditSpec()
    )
    preview = Image.open(edit_files.path(settings, job_id, edit_files.PREVIEW))
    assert preview.format == "WEBP" and preview.size == (drawn.width, drawn.height)
    assert max(preview.size) <= editing.PREVIEW_SIDE
    alpha = np.asarray(preview.convert("RGBA"))[..., 3]
    assert (alpha[30:110, 30:110] < 16).all()


def test_bad_input_is_refused_and_nothing_is_kept(db, settings, clock, owner, job_id) -> None:
    outside = retouch.Brush("erase", ((9999.0, 5.0),), 10.0)
    with pytest.raises(BadParameter, match="outside"):
        add(db, settings, owner, job_id, outside)
    assert edit_files.load_history(settings, job_id).steps == []
    with pytest.raises(BadParameter, match="box or a keep/remove"):
        add(db, settings, owner, job_id, retouch.Cut(aicut.Marks()))


def test_other_accounts_and_unfinished_jobs_cannot_be_edited(
    db, settings, clock, owner, job_id
) -> None:
    stranger = confirmed_account(db, clock, settings, "stranger@example.com").id
    with pytest.raises(JobNotFound):
        editing.open_editor(db=db, settings=settings, account_id=stranger, job_id=job_id)
    queued = cutouts.submit_photo(
        db=db,
        settings=settings,
        clock=clock,
        account_id=owner,
        filename="coffee.jpg",
        data=jpeg(photos.coffee()),
    )
    with pytest.raises(editing.NotEditable):
        editing.open_editor(db=db, settings=settings, account_id=owner, job_id=queued.id)


def test_a_second_charged_export_while_one_holds_credits_is_refused(
    db, settings, clock, owner, job_id
) -> None:
    from app.db import writing

    editing.set_hair(db=db, settings=settings, account_id=owner, job_id=job_id, on=True)
    before = available(db, clock, owner)
    # The first export (another tab) has taken its hold and is still rendering.
    history = edit_files.load_history(settings, job_id)
    history.attempt = 1
    edit_files.save_history(settings, job_id, history)
    with writing(db) as session:
        ledger.reserve_credits(
            session=session,
            clock=clock,
            account_id=owner,
            wallet=Wallet.web,
            amount=500,
            key=f"edit:{job_id}:hair:1",
        )
    with pytest.raises(NotAllowed, match="under way"):
        export(db, settings, clock, owner, job_id, expected=500)
    assert available(db, clock, owner) == before - 500, "only the first hold"


def test_the_look_a_preview_was_drawn_with_comes_back_when_the_photo_reopens(
    db, settings, clock, owner, job_id
) -> None:
    first = editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    assert first.look == edit_files.Look()  # never drawn: the defaults
    look = edit_files.Look(
        background="color", color="#1e90ff", shadow=True, preset="4:5", position_y=70
    )
    spec = EditSpec(background="color", color="#1e90ff", shadow=True, canvas="4:5")
    editing.render_preview(
        db=db, settings=settings, account_id=owner, job_id=job_id, spec=spec, look=look
    )
    again = editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    assert again.look == look

    # Another account's draw is refused and changes nothing.
    stranger = confirmed_account(db, clock, settings, "stranger@example.com").id
    with pytest.raises(JobNotFound):
        editing.render_preview(
            db=db,
            settings=settings,
            account_id=stranger,
            job_id=job_id,
            spec=EditSpec(),
            look=edit_files.Look(background="blur"),
        )
    # A draw that fails keeps the last look that was drawn.
    with pytest.raises(BadParameter):
        editing.render_preview(
            db=db,
            settings=settings,
            account_id=owner,
            job_id=job_id,
            spec=EditSpec(background="image"),  # no background photo uploaded
            look=edit_files.Look(background="image"),
        )
    last = editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    assert last.look == look


def test_a_damaged_look_file_falls_back_to_defaults_field_by_field(settings) -> None:
    target = edit_files.path(settings, "job-1", edit_files.LOOK)
    target.parent.mkdir(parents=True)
    target.write_text("{not json")
    assert edit_files.load_look(settings, "job-1") == edit_files.Look()
    target.write_text('["a list"]')
    assert edit_files.load_look(settings, "job-1") == edit_files.Look()
    target.write_text('{"background": "blur", "margin": "12", "shadow": 1, "position_x": 10}')
    assert edit_files.load_look(settings, "job-1") == edit_files.Look(
        background="blur", position_x=10
    )


def test_an_export_keeps_its_format_quality_and_size_with_the_photo(
    db, settings, clock, owner, job_id
) -> None:
    editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    look = edit_files.Look(export_format="jpeg", quality=70, export_size="1024")
    spec = EditSpec(background="color", format="jpeg", quality=70, max_side=1024)
    result = editing.export_edit(
        db=db,
        settings=settings,
        clock=clock,
        account_id=owner,
        job_id=job_id,
        spec=spec,
        expected_cost=0,
        look=look,
    )
    assert result.name.endswith(".jpg") and max(result.width, result.height) <= 1024
    reopened = editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    assert reopened.look == look
    # An export refused before any work keeps the last look.
    with pytest.raises(editing.PriceChanged):
        editing.export_edit(
            db=db,
            settings=settings,
            clock=clock,
            account_id=owner,
            job_id=job_id,
            spec=EditSpec(format="webp"),
            expected_cost=500,
            look=edit_files.Look(export_format="webp"),
        )
    reopened = editing.open_editor(db=db, settings=settings, account_id=owner, job_id=job_id)
    assert reopened.look == look
