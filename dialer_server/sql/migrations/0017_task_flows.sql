-- Task flows (issue 16, engine/flow.py): what happens to a contact after the call.
-- A campaign's flow is a set of named tasks (call, sms, email, webhook, export,
-- wait, new_contact) and rules that move a contact from one task to the next by the
-- status (and status detail) it ended the task with, after a delay.

-- A flow is immutable once stored, like a strategy: a change is a new version, so
-- the contacts already on their way keep the meaning they started under.
CREATE TABLE flows (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    version    integer NOT NULL CHECK (version >= 1),
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

-- NULL: no flow, the campaign is one call task (as before flows).
ALTER TABLE campaigns ADD COLUMN flow_id bigint REFERENCES flows (id);

-- Where a contact is in its campaign's flow. task NULL: the flow's first task (a
-- call task: imported contacts are dialled as ever), or the campaign has no flow.
-- A task other than call is due at task_due_at (NULL while it runs, or when nothing
-- is due): the call claim never sees it, its next_attempt_at stays NULL. task_key is
-- the idempotency key of this pass through the task (every try of one pass carries
-- it: the Message-ID of an email, the Idempotency-Key of a webhook); task_pass the
-- pass number, task_passes the passes of every task so far ({"call": 2}), task_tries
-- the executions of this pass (retries), task_entered_at when this pass began.
ALTER TABLE contacts ADD COLUMN task text CHECK (task ~ '^[a-z0-9][a-z0-9_-]{0,62}$');
ALTER TABLE contacts ADD COLUMN task_due_at timestamptz;
ALTER TABLE contacts ADD COLUMN task_key uuid;
ALTER TABLE contacts ADD COLUMN task_pass integer NOT NULL DEFAULT 1 CHECK (task_pass >= 1);
ALTER TABLE contacts ADD COLUMN task_passes jsonb;
ALTER TABLE contacts ADD COLUMN task_tries integer NOT NULL DEFAULT 0 CHECK (task_tries >= 0);
ALTER TABLE contacts ADD COLUMN task_entered_at timestamptz;
-- The task executor only ever looks at due tasks: keep that index small.
CREATE INDEX contacts_task_due_idx ON contacts (task_due_at) WHERE task_due_at IS NOT NULL;

-- The task log: every execution of a task for a contact. A call task's run is
-- written when its strategy closes it; the others' when an executor leases them
-- (state 'running', the daemon's instance id: a daemon that dies leaves it to be
-- taken over, like an open attempt) and ended once with their status (open: the
-- pass is tried again after a backoff) or, for a run its daemon never finished,
-- 'interrupted' (no status: the pass is tried again with the same key).
CREATE TABLE task_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id      bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    task            text NOT NULL,
    task_type       text NOT NULL CHECK (task_type IN (
                        'call', 'sms', 'email', 'webhook', 'export', 'wait', 'new_contact')),
    pass            integer NOT NULL CHECK (pass >= 1),
    try             integer NOT NULL CHECK (try >= 1),
    idempotency_key uuid NOT NULL,
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'ended', 'interrupted')),
    status          text CHECK (status IN ('open', 'success', 'declined', 'failed')),
    status_detail   text CHECK (length(status_detail) BETWEEN 1 AND 100),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at        timestamptz,
    error           text,
    -- Where the contact went next ('' : it stayed, closed), for the log's reader.
    moved_to        text,
    instance_id     integer REFERENCES dialer_instances (id),
    CHECK ((state = 'ended') = (status IS NOT NULL)),
    CHECK ((state = 'running') = (ended_at IS NULL))
);
CREATE INDEX task_runs_contact_idx ON task_runs (contact_id, id);
CREATE INDEX task_runs_campaign_idx ON task_runs (campaign_id, id);
-- What a daemon taking over looks at: runs no daemon finished.
CREATE INDEX task_runs_running_idx ON task_runs (instance_id) WHERE state = 'running';

-- Export tasks: the rows of each task's file of the day (the campaign's time zone),
-- one per pass (its idempotency key): a pass run twice writes its row once. The
-- files are written from these rows, and served from them over the API.
CREATE TABLE task_export_rows (
    idempotency_key uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    campaign_id     bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    task            text NOT NULL,
    day             date NOT NULL,
    contact_id      bigint NOT NULL,
    row             jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_export_rows_file_idx ON task_export_rows (campaign_id, task, day, seq);

-- One row per file: its format, how many rows it holds in the database, and how many
-- the file in the export folder held when last written (fewer: to be written again).
CREATE TABLE task_export_files (
    campaign_id  bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    task         text NOT NULL,
    day          date NOT NULL,
    format       text NOT NULL CHECK (format IN ('csv', 'xlsx')),
    rows         bigint NOT NULL DEFAULT 0,
    written_rows bigint NOT NULL DEFAULT 0,
    written_at   timestamptz,
    PRIMARY KEY (campaign_id, task, day)
);
CREATE INDEX task_export_files_stale_idx ON task_export_files (campaign_id)
    WHERE written_rows < rows;
