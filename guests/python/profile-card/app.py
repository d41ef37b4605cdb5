"""profile-card: a plinth plugin in Python.

Reads a user's profile through `plinth:database/users` and renders it as a
text card; lets the user change their bio. Built by componentize-py (see
README.md beside this file).

How the WIT arrives in Python: functions are snake_case; records are
dataclasses (`User`); a variant is one class per case (`FieldChange_Set`,
`Error_NotFound`); `option<string>` is `str | None`; a `result` returned by
an import is its ok value, its error raised as `componentize_py_types.Err`,
and raising `Err(error)` from an export returns that error to the caller.
"""

import datetime

import wit_world
from componentize_py_types import Err
from wit_world.imports import users
from wit_world.imports.types import (
    Error_InvalidInput,
    FieldChange,
    FieldChange_Keep,
    ProfileChanges,
    User,
)

# The longest bio the card accepts (the database takes more; the card is a
# card).
MAX_BIO = 280


def render(user: User) -> str:
    joined = datetime.datetime.fromtimestamp(user.created_at, datetime.timezone.utc)
    mark = " ✓" if user.email_verified else ""
    lines = [
        f"{user.name}{mark}",
        f"<{user.email}>",
        user.bio if user.bio is not None else "(no bio yet)",
    ]
    if user.avatar is not None:
        lines.append(f"avatar: {user.avatar}")
    lines.append(f"member since {joined:%Y-%m-%d}")
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    body = [f"| {line.ljust(width)} |" for line in lines]
    return "\n".join([rule, *body, rule])


class WitWorld(wit_world.WitWorld):
    def card(self, email: str) -> str:
        # `not-found` and `invalid-input` raise Err and pass through as the
        # export's error.
        return render(users.get_user_by_email(email))

    def set_bio(self, email: str, bio: FieldChange) -> str:
        text = getattr(bio, "value", None)
        if isinstance(text, str) and len(text) > MAX_BIO:
            raise Err(Error_InvalidInput(f"a bio is at most {MAX_BIO} characters"))
        user = users.get_user_by_email(email)
        changes = ProfileChanges(name=None, avatar=FieldChange_Keep(), bio=bio)
        return render(users.update_user_profile(user.uuid, changes))
