-- How durable a commit is (db/pool.py): the daemon warns when a failover could lose
-- what it acknowledged.

-- name: commit_durability
SELECT current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('synchronous_standby_names') AS synchronous_standby_names;
