// The {{name}} plugin.
//
// componentize-qjs turns this ES module into a component: its exported
// functions are the world's exports (camelCase), the imports are modules
// named by their WIT interface. A WIT `result` comes back from an import as
// its value, or thrown as an error whose `payload` is the error variant
// (`{ tag: "not-found" }`); throwing one from an export returns it as the
// export's error.
import users from "plinth:database/users@0.1.0";

export function greet(email) {
    try {
        const user = users.getUserByEmail(email);
        return `hello, ${user.name}!`;
    } catch (e) {
        if (e.payload?.tag === "not-found") {
            return `nobody is registered as ${email}`;
        }
        return `the database said ${JSON.stringify(e.payload ?? String(e))}`;
    }
}

export function profile(email) {
    return users.getUserByEmail(email);
}
