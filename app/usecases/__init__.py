"""What people and operators ask of Cutout, in the product's words.

This is the only layer that opens units of work (`app.db.reading` / `app.db.writing`): each use
case composes the domain services under `app.services`, which all take a `session` and never
commit. Pages and states, HTTP routes and command lines call these functions and nothing below.
Blocking: callers on the event loop run them in a thread.
"""
