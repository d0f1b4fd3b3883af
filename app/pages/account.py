"""Account: plan, wallets, credit lots, history, recent cutouts, API keys, security."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventChain
from reflex.vars import FunctionVar

from app import routes
from app.components.purchase import purchase_feedback
from app.components.shell import block_callout, page_shell, page_skeleton
from app.pages.auth import post_form
from app.state.account import NEW_KEY_FIELD, AccountState

COPIED_NOTE = "new-key-copied"
# Straight from the field to the clipboard, in the browser: the key never passes through state.
# A function in the page's bundle (the CSP forbids eval, which rx.call_script needs).
COPY_KEY = rx.Var(
    f"""(() => {{
  const field = document.getElementById('{NEW_KEY_FIELD}');
  const note = document.getElementById('{COPIED_NOTE}');
  const copied = () => {{ note.textContent = 'Copied to the clipboard.'; }};
  const selected = () => {{ field.select(); note.textContent = 'Selected: copy it now.'; }};
  if (navigator.clipboard && window.isSecureContext) {{
    navigator.clipboard.writeText(field.value).then(copied, selected);
  }} else {{
    field.select();
    document.execCommand('copy') ? copied() : selected();
  }}
}})"""
).to(FunctionVar, EventChain)


def _section(title: str, *children: rx.Component) -> rx.Component:
    return rx.card(
        rx.vstack(rx.heading(title, size="4", as_="h2"), *children, spacing="3", width="100%"),
        width="100%",
    )


# Columns a phone does without, so the rest fit without scrolling sideways.
WIDE_COLUMN = {"display": ["none", "table-cell"]}


def _table(
    headers: list[str], rows: rx.Var, cells, wide_only: tuple[int, ...] = ()
) -> rx.Component:  # type: ignore[no-untyped-def]
    return rx.box(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h, **(WIDE_COLUMN if i in wide_only else {}))
                        for i, h in enumerate(headers)
                    ]
                )
            ),
            rx.table.body(rx.foreach(rows, lambda row: rx.table.row(*cells(row)))),
            size="1",
            width="100%",
            variant="ghost",
        ),
        overflow_x="auto",
        width="100%",
        max_width="100%",
    )


def _feedback() -> rx.Component:
    return rx.fragment(
        rx.cond(
            AccountState.problem != "",
            rx.callout(
                AccountState.problem,
                icon="triangle-alert",
                color_scheme="red",
                role="alert",
                width="100%",
            ),
        ),
        rx.cond(
            AccountState.message != "",
            rx.callout(AccountState.message, icon="check", color_scheme="green", width="100%"),
        ),
    )


def _wallets() -> rx.Component:
    return _section(
        "Credits",
        rx.grid(
            rx.foreach(
                AccountState.wallets,
                lambda w: rx.card(
                    rx.text(w["name"], size="1", color_scheme="gray"),
                    rx.heading(w["available"], size="6"),
                    rx.text(
                        w["note"],
                        rx.cond(w["reserved"] != "", " · " + w["reserved"] + " on hold", ""),
                        size="1",
                        color_scheme="gray",
                    ),
                ),
            ),
            columns=rx.breakpoints(initial="2", sm="3"),
            spacing="3",
            width="100%",
        ),
        rx.text(
            "Credit batches with their expiry; the batch that expires soonest is spent first. "
            "Credits on hold are set aside for a photo in progress: charged when it is done, "
            "returned if it fails.",
            size="2",
        ),
        _table(
            ["Source", "Wallets", "Added", "Expires", "Left"],
            AccountState.lots,
            lambda r: [
                rx.table.cell(r["source"]),
                rx.table.cell(r["scope"]),
                rx.table.cell(r["issued"], **WIDE_COLUMN),
                rx.table.cell(r["expires"]),
                rx.table.cell(r["remaining"]),
            ],
            wide_only=(2,),
        ),
        rx.link("Buy credits", href=routes.PRICING),
    )


def _plan() -> rx.Component:
    """The plan and its billing: status, the Stripe portal, switching, cancelling."""
    subscribed = rx.vstack(
        rx.cond(
            AccountState.payment_failed,
            rx.callout(
                "Payment failed: Stripe could not charge your card for this month. Update your "
                "card in the billing portal; Stripe retries it.",
                icon="credit-card",
                color_scheme="red",
                role="alert",
                width="100%",
            ),
        ),
        rx.cond(AccountState.plan_line != "", rx.text(AccountState.plan_line, size="2")),
        rx.flex(
            rx.cond(
                AccountState.cancel_scheduled,
                rx.button(
                    "Keep my plan",
                    on_click=AccountState.resume_plan,
                    loading=AccountState.billing_busy,
                    variant="soft",
                ),
                rx.fragment(
                    rx.button(
                        "Switch to ",
                        rx.text(AccountState.switch_to, as_="span", text_transform="capitalize"),
                        on_click=AccountState.switch_plan(AccountState.switch_to),
                        loading=AccountState.billing_busy,
                        variant="soft",
                    ),
                    rx.button(
                        "Cancel plan",
                        on_click=AccountState.cancel_plan,
                        loading=AccountState.billing_busy,
                        variant="soft",
                        color_scheme="red",
                    ),
                ),
            ),
            spacing="2",
            wrap="wrap",
        ),
        rx.text(
            "Cancelling stops the monthly credits at the end of the period; credits you already "
            "have stay valid for their own 90 days.",
            size="1",
            color_scheme="gray",
        ),
        width="100%",
        spacing="3",
    )
    return _section(
        "Plan and billing",
        rx.text(
            "Plan: ",
            rx.text.strong(AccountState.plan, text_transform="capitalize"),
            size="3",
        ),
        rx.cond(
            AccountState.billing_ready,
            rx.vstack(
                rx.cond(
                    AccountState.has_subscription,
                    subscribed,
                    rx.link("See plans and top-ups", href=routes.PRICING, size="2"),
                ),
                rx.cond(
                    AccountState.has_customer,
                    rx.button(
                        rx.icon("external-link", size=14),
                        "Payment methods and invoices",
                        on_click=AccountState.open_portal,
                        loading=AccountState.billing_busy,
                        variant="outline",
                    ),
                ),
                width="100%",
                spacing="3",
            ),
            rx.text(
                "Billing is not set up on this server: the operator adds credits.",
                size="2",
                color_scheme="gray",
            ),
        ),
    )


def _history() -> rx.Component:
    return _section(
        "History",
        _table(
            ["When", "What", "Credits", "Batch"],
            AccountState.history,
            lambda r: [
                rx.table.cell(r["when"]),
                rx.table.cell(r["kind"]),
                rx.table.cell(r["amount"]),
                rx.table.cell(r["lot"]),
            ],
        ),
        rx.hstack(
            rx.button(
                "Newer",
                variant="soft",
                size="1",
                disabled=AccountState.history_page <= 1,
                on_click=AccountState.show_history_page(AccountState.history_page - 1),
            ),
            rx.text(
                "Page ", AccountState.history_page, " of ", AccountState.history_pages, size="1"
            ),
            rx.button(
                "Older",
                variant="soft",
                size="1",
                disabled=AccountState.history_page >= AccountState.history_pages,
                on_click=AccountState.show_history_page(AccountState.history_page + 1),
            ),
            align="center",
        ),
    )


def _jobs() -> rx.Component:
    return _section(
        "Recent cutouts",
        rx.text("Kept for 24 hours; downloading again is free.", size="1", color_scheme="gray"),
        rx.cond(
            AccountState.jobs.length() > 0,
            rx.vstack(
                rx.foreach(
                    AccountState.jobs,
                    lambda job: rx.hstack(
                        rx.text(job["name"], size="2", trim="both", flex="1"),
                        rx.cond(
                            job["status"] == "done",
                            rx.link(
                                "Download",
                                href=job["download"],
                                download=job["file"],
                                reload_document=True,
                                size="2",
                            ),
                            rx.text(job["status"], size="2", color_scheme="gray"),
                        ),
                        width="100%",
                    ),
                ),
                width="100%",
            ),
            rx.text("No cutouts yet.", size="2"),
        ),
    )


def _keys() -> rx.Component:
    return _section(
        "API keys",
        # Always in the page, hidden until a key is made: the key is written into the field
        # by the browser (rx.set_value), so it never passes through (or stays in) state.
        rx.el.div(
            block_callout(
                "key",
                rx.vstack(
                    rx.el.label(
                        "Your new key. Copy it now: it will not be shown again.",
                        html_for=NEW_KEY_FIELD,
                        style={"font_size": "0.9rem"},
                    ),
                    rx.flex(
                        rx.el.input(
                            id=NEW_KEY_FIELD,
                            read_only=True,
                            style={
                                "flex": "1",
                                "min_width": "0",
                                "box_sizing": "border-box",
                                "font_family": "monospace",
                                "padding": "0.4rem",
                                "background": "white",
                            },
                        ),
                        rx.button(
                            rx.icon("copy", size=14),
                            "Copy",
                            type="button",
                            size="2",
                            on_click=COPY_KEY,
                        ),
                        spacing="2",
                        width="100%",
                    ),
                    rx.el.span(id=COPIED_NOTE, role="status", style={"font_size": "0.85rem"}),
                    width="100%",
                ),
                color_scheme="green",
                width="100%",
            ),
            hidden=~AccountState.key_shown,
            width="100%",
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="name",
                    placeholder="Key name, e.g. Shop plugin",
                    required=True,
                    aria_label="Key name",
                    flex="1",
                ),
                rx.button("Create key", type="submit"),
                width="100%",
            ),
            on_submit=AccountState.create_key,
            reset_on_submit=True,
            width="100%",
        ),
        rx.vstack(
            rx.foreach(
                AccountState.keys,
                lambda k: rx.flex(
                    rx.vstack(
                        rx.text(k["name"], weight="medium", size="2", word_break="break-word"),
                        rx.text(
                            rx.code(k["prefix"], "…"),
                            " · made ",
                            k["created"],
                            " · last used ",
                            k["used"],
                            size="1",
                            color_scheme="gray",
                            high_contrast=True,
                        ),
                        spacing="1",
                        flex="1",
                        min_width="0",
                    ),
                    rx.button(
                        "Revoke",
                        size="1",
                        color_scheme="red",
                        variant="soft",
                        on_click=AccountState.revoke_key(k["id"]),
                        aria_label="Revoke " + k["name"],
                    ),
                    spacing="3",
                    align="center",
                    width="100%",
                    padding_y="0.5rem",
                    border_top="1px solid var(--gray-a4)",
                    role="listitem",
                ),
            ),
            width="100%",
            spacing="0",
            role="list",
            aria_label="Your API keys",
        ),
    )


def _password_input(name: str, label: str, autocomplete: str) -> rx.Component:
    return rx.input(
        name=name,
        width="100%",
        type="password",
        placeholder=label,
        aria_label=label,
        auto_complete=autocomplete,
    )


def _security() -> rx.Component:
    return _section(
        "Sign-in and privacy",
        rx.form(
            rx.vstack(
                _password_input("current", "Current password", "current-password"),
                _password_input("new", "New password", "new-password"),
                _password_input("repeat", "Repeat new password", "new-password"),
                rx.text(
                    "An account made through a sign-in provider has no current password: "
                    "leave it empty within 10 minutes of signing in.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.button("Change password", type="submit", variant="soft"),
                width="100%",
            ),
            on_submit=AccountState.change_password,
            reset_on_submit=True,
            width="100%",
        ),
        post_form(
            routes.SIGN_OUT_EVERYWHERE_POST,
            rx.button("Sign out everywhere", type="submit", variant="soft"),
        ),
        rx.form(
            rx.vstack(
                rx.text(
                    "Delete the account: your photos, keys and personal data are removed; "
                    "the anonymised credit ledger is kept for the books.",
                    size="2",
                ),
                rx.input(
                    name="confirm_email",
                    width="100%",
                    placeholder="Type your email to confirm",
                    aria_label="Confirm email",
                ),
                _password_input("password", "Password to delete", "current-password"),
                rx.button("Delete account", type="submit", color_scheme="red"),
                width="100%",
            ),
            on_submit=AccountState.delete_account,
            reset_on_submit=True,
            width="100%",
        ),
    )


def account() -> rx.Component:
    return page_shell(
        rx.heading("Your account", size="7"),
        rx.cond(
            AccountState.signed_in,
            rx.vstack(
                rx.text(AccountState.account_email, color_scheme="gray", high_contrast=True),
                _feedback(),
                purchase_feedback(),
                _plan(),
                _wallets(),
                _jobs(),
                _keys(),
                _history(),
                _security(),
                spacing="5",
                width="100%",
            ),
            page_skeleton("40rem"),
        ),
    )
