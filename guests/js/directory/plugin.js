// directory: a plinth plugin in JavaScript.
//
// Finds users by an email, a name or a UUID through `plinth:database/users`,
// and renames them. Built by componentize-qjs (see README.md beside this
// file).
//
// How the WIT arrives in JavaScript: functions and record fields are
// camelCase (`getUserByEmail`, `emailVerified`, `matchedBy`); a variant is
// `{ tag, val }` (`{ tag: "conflict", val: "name" }`); an enum is its case
// name as a string; `option<T>` is the value or `null`; `s64` is a number.
// A `result` returned by an import is its ok value, its error thrown with
// the variant in `payload`; throwing `{ payload: error }` from an export
// returns that error to the caller.
import users from "plinth:database/users@0.1.0";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// The user, or null when there is none; any other error is rethrown.
function find(lookup, key) {
    try {
        return lookup(key);
    } catch (e) {
        if (e.payload?.tag === "not-found" || e.payload?.tag === "invalid-input") {
            return null;
        }
        throw e;
    }
}

export function lookup(query) {
    const q = query.trim();
    const found = [];
    const seen = new Set();
    const tries = [
        ["email", q.includes("@") ? (k) => users.getUserByEmail(k) : null],
        ["name", (k) => users.getUserByName(k)],
        ["uuid", UUID.test(q) ? (k) => users.getUserByUuid(k) : null],
    ];
    for (const [matchedBy, get] of tries) {
        const user = get ? find(get, q) : null;
        if (user && !seen.has(user.uuid)) {
            seen.add(user.uuid);
            found.push({
                name: user.name,
                email: user.email,
                verified: user.emailVerified,
                matchedBy,
            });
        }
    }
    return found;
}

export function rename(uuid, name) {
    if (name.trim() === "") {
        throw { payload: { tag: "invalid-input", val: "a name cannot be blank" } };
    }
    return users.updateUserProfile(uuid, {
        name,
        avatar: { tag: "keep" },
        bio: { tag: "keep" },
    });
}
