"""The {{name}} plugin.

componentize-py turns this module into a component: the class `WitWorld`
implements the world's exports; the imports are modules under
`wit_world.imports`. A WIT `result` comes back from an import as its value,
or raised as `componentize_py_types.Err` holding the error variant.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import users
from wit_world.imports.types import Error_NotFound, User


class WitWorld(wit_world.WitWorld):
    def greet(self, email: str) -> str:
        try:
            user = users.get_user_by_email(email)
        except Err as e:
            if isinstance(e.value, Error_NotFound):
                return f"nobody is registered as {email}"
            return f"the database said {e.value}"
        return f"hello, {user.name}!"

    def profile(self, email: str) -> User:
        # An `Err` raised here is the export's error: `not-found` passes
        # through to the caller as it came.
        return users.get_user_by_email(email)
