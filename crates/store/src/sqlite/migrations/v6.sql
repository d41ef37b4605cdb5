-- v6: plugins' own database sessions (shipped; never edit).
--
-- On PostgreSQL a plugin's statements run in a session of its own role,
-- which needs two tables of the host's. An SQLite file runs every plugin's
-- statements on the host's connection under its authorizer, and needs
-- neither: this version records only that the file is current.
SELECT 1;
