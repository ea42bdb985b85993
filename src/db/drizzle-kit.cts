// drizzle-kit finds tables only among the named exports of its schema files, and the kinds' tables are built
// from the registry at run time: this CommonJS module exports every one of them under a name of its own.
import schema = require("./schema");

export = schema.allTables;
