# What went wrong, for the person at the command line (and, in English, for logs and the JSON
# API): the store, imports, the configuration, the report calendar, templates.
# zh-CN/problems.ftl must hold the same ids with the same placeholders.

## Shared

unknown-choice = { $what } "{ $value }" is not one of: { $known }
file-unreadable = cannot read { $file }: { $error }
file-unwritable = cannot write { $file }: { $error }
file-unparsed = { $file }: { $error }
file-format = { $file }: name the file { $formats } so its format is known

## The store

store-database = database error: { $error }
store-migrate = database migration failed: { $error }
store-corrupt = stored data cannot be read: { $detail }
store-injected = injected store failure: { $what }
store-stopping = the server is shutting down and takes no more writes
store-no-cell = grid cell { $cell } does not exist
store-no-cell-seed = grid cell { $cell } does not exist; run `patrolsync admin seed-demo` or import the grid first
store-cell-retired = grid cell { $cell } is retired; assign a cell in use
store-no-parent = cell { $cell }: parent cell { $parent } does not exist
store-cell-moved = cell { $cell } is at { $old }; it cannot move to { $new } (retire it and add the new place under a new code)
store-checkpoint-no-cell = checkpoint { $checkpoint }: cell { $cell } does not exist
store-no-checkpoint = checkpoint { $checkpoint } does not exist
store-no-unit = key unit { $unit } does not exist; `patrolsync admin units list` lists them
store-unit-moved = key unit { $unit } is in cell { $old }; it cannot move to { $new } (register the new place under a new code)
store-unit-checkpoint-outside = key unit { $unit }: checkpoint { $checkpoint } is not in cell { $cell } or below it
store-household-moved = household { $household } is in cell { $old }; it cannot move to { $new } (register a household that moved under a new code)
store-no-household = household { $household } is not on the register; `patrolsync admin households list` lists it
store-no-user = user { $user } does not exist; import people or enroll them first
store-no-device = no device { $device }; see `patrolsync admin devices`
store-not-enrolled = device { $device } is not enrolled
store-device-vanished = device { $device } vanished during enrollment
store-device-id-short = device id "{ $device }" is too short; give the id or at least its first 8 characters
store-device-ambiguous = { $n } devices start with { $device }; give more of the id
store-no-task = task { $task } does not exist
store-task-retired = grid cell { $cell } is retired and takes no new tasks
store-task-place = { $what } { $code } is not in grid cell { $cell } (or does not exist)
store-task-invalid = the task is not valid: { $detail }
store-no-hazard = hazard { $hazard } does not exist
store-no-admin = no admin named { $name }
store-admin-exists = an admin named { $name } exists already; revoke it or choose another name
store-agency-needed = an agency user needs --agency police_station or --agency fire_brigade
store-agency-only = --agency is only for agency users, not a { $role }
store-user-empty = user name is empty
store-cells-needed = a { $role } needs at least one grid cell (--grid)
store-party-no-cells = a { $role } holds the hazards routing rules send it, not grid cells: enroll it without --grid
store-demo-enrollment = the demo device could not enroll: { $error }

## Imports (grid, checkpoints, people)

import-place = { $unit ->
    [line] line { $n }
   *[feature] feature { $n }
}
import-row = { $at }: { $message }
import-row-column = { $at }, column { $column }: { $message }
import-rows = { $n } { $one ->
    [true] bad row
   *[false] bad rows
}; nothing was imported:
import-more = … and { $n } more
import-header = line 1: { $error }
import-csv = { $error }
import-no-column = the header has no `{ $column }` column
import-unknown-column = unknown column (known: { $known })
import-column-twice = the { $column } column is headed twice (e.g. both 编码 and 单位编码): which one holds the value?
import-no-header = column { $column } holds a value but has no header
import-not-geojson = not GeoJSON: { $error }
import-not-collection = expected a GeoJSON FeatureCollection
import-empty = is empty
import-bad-code = "{ $value }": use letters, digits, '-', '_' or '.', at most 64
import-not-geometry = not a GeoJSON geometry: { $error }
import-not-wkt = not WKT: { $error }
import-not-polygon = a boundary must be a Polygon or MultiPolygon
import-bad-level = "{ $value }": a level from 1 (street) to 4 (building)
import-duplicate = { $value } is already on { $unit ->
    [line] line
   *[feature] feature
} { $n }
import-cell-moved = { $cell } is under "{ $parent }" now; moving a cell is not supported (retire it and import it under a new code)
import-needs-parent = a level-{ $level } cell needs a parent
import-retired = { $value } is retired
import-unknown-parent = { $parent } is neither in this file nor in the grid
import-wrong-level = { $level } under { $parent }, a level-{ $parent_level } cell: expected { $expected }
import-not-point = a checkpoint's geometry must be a Point
import-cell-unknown = "{ $cell }" is not in the grid
import-number-range = "{ $value }": a number from { $min } to { $max }
import-coordinates-range = coordinates out of range
import-both-coordinates = give both latitude and longitude, or neither
import-unknown-code = "{ $value }" is not one of: { $known }
import-people-csv = people are imported from CSV or XLSX (name,role,agency,cells)
import-name-length = 1 to 128 characters
import-agency-needed = an agency user needs police_station or fire_brigade
import-agency-only = only for role agency
import-not-live = { $cell } is not a live cell of the grid
import-xlsx = cannot read the XLSX file { $file }: { $error }
import-xlsx-empty = the first sheet of the XLSX file { $file } is empty
import-xlsx-cell = the cell holds a formula error ({ $error })
import-too-long = at most { $max } characters
import-bad-phone = "{ $value }" is not a phone number (3 to 20 digits, with +, -, spaces and parentheses allowed)
import-bad-date = "{ $value }": write a date as 2026-11-20
import-checkpoint-unknown = checkpoint { $checkpoint } does not exist

## Templates

tpl-item-value = { $file }: item { $n } ({ $item }), { $field }: "{ $value }" is not one of: { $known }
tpl-definition = { $file }: { $problem }
tpl-rule = { $field ->
    [id] the template id "{ $value }": letters, digits, '-', '_' or '.', at most 64
    [name] the template needs a name
    [items] the template has no items
    [items_id] { $reason ->
        [duplicate] item { $n }: id { $item } is used twice
       *[other] item { $n }: id "{ $item }": letters, digits, '-', '_' or '.'
    }
    [items_label] item { $n } ({ $item }) has no label
   *[other] { $field }: { $reason }
}
tpl-toml = { $file }: line { $line }, column { $column }: { $error }

## Configuration

cfg-read = cannot read config file { $path }: { $error }
cfg-parse = config file { $path } is invalid: { $error }
cfg-invalid = invalid configuration: { $problem }
cfg-at-least = { $key } = { $value } is too small (at least { $min })
cfg-above-zero = { $keys }: must be above 0
cfg-between = { $key } = { $value } must be between { $min } and { $max }
cfg-ingest-writers = ingest_writers = { $value } must be 1, 2, 4 or 8 (a divisor of the 16 count shards, so no two writers share one)
cfg-database-url = database_url must start with sqlite: or postgres:, got "{ $value }"
cfg-escalation = escalation.interval must be at least 1s and escalation.check_every at least 100ms
cfg-dispatch = dispatch.offer_timeout must be at least 1s, dispatch.check_every at least 100ms and dispatch.duty_ttl at least 1m
cfg-s3-bucket = photos.backend = "s3" needs photos.bucket
cfg-visit-group = reports.visit_cadence: "{ $value }" is not a must-visit group (hardship, elderly_alone, disabled, migrant, unemployed, assisted)

## The report calendar

cal-cadence = unknown cadence "{ $value }": use daily, weekly, monthly or quarterly
cal-config-cadence = reports.cadence: unknown cadence "{ $value }": use daily, weekly, monthly or quarterly
cal-cadence-empty = reports.cadence needs one entry per grid level, big first
cal-time-zone = reports.time_zone = "{ $value }" is not an IANA time zone (e.g. Asia/Shanghai)
cal-week-start = reports.week_start = "{ $value }" is not a weekday (e.g. monday)
cal-moment = time "{ $value }": use 2026-11-03 (the end of that day), 2026-11-03 09:00 (local, in { $zone }) or 2026-11-03T09:00:00+08:00 (RFC 3339)
cal-years = time "{ $value }": years from 1970 to 9999
cal-skipped = time "{ $value }" does not exist in { $zone } (a clock change)
cal-period = period "{ $value }": use 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or 2026-11-23..2026-11-29 (days, both included)
cal-period-years = period "{ $value }": years from 1970 to 9999
cal-period-backwards = period "{ $value }" ends before it starts

## The command line

report-xlsx-needs-out = --format xlsx needs -o FILE
cli-error-joint = { ": " }
cli-audit-chain-broken = the audit log's hash chain breaks at entry { $at }
cli-people-crs = --crs is for grid and checkpoint imports; a people file has no coordinates
cli-template-unpublished = template { $id } is not published
cli-template-version-unpublished = template { $id } version { $version } is not published
cli-not-hazard-id = "{ $id }" is not a hazard id (a UUID, as devices show it)
cli-no-hazard = hazard { $hazard } does not exist on this server
cli-opening-database = opening the database at { $url }
cli-as-of-future = --as-of "{ $value }" ({ $at }) is in the future (now { $now }): a report can only stand at a moment that has passed

## Argument errors (the command lines): English is clap's own wording; these are kept for the
## catalog's pairs.

clap-value = invalid value "{ $value }" for { $arg }: { $why }
clap-choice = invalid value "{ $value }" for { $arg }: one of { $known }
clap-unknown-argument = unexpected argument { $arg }
clap-unknown-command = unrecognized subcommand { $command }
clap-missing = required arguments were not provided: { $args }
clap-conflict = { $arg } cannot be used with { $prior }
clap-value-count = wrong number of values for { $arg }
clap-suggest = a similar one exists: { $similar }
clap-usage = Usage: { $usage }
clap-help = For more information, try --help

## The device command line

dev-hazard-not-here = hazard { $id } is not on this device (not in your cells, or not synced yet)
dev-opening-state = opening device state in { $dir }
dev-bad-deadline = "{ $value }" is neither a duration (7d, 48h) nor a date (2026-12-31)
dev-bad-sha256 = "{ $value }" is not a SHA-256 (64 hex digits)

## The admin API (the dashboard shows these)

admin-token-missing = missing admin token; send Authorization: Bearer <token> (the data dir's admin.token, or one `patrolsync admin admins add` printed)
admin-token-unknown = unknown admin token; send Authorization: Bearer <token> (the data dir's admin.token, or one `patrolsync admin admins add` printed)
admin-token-revoked = admin { $admin }'s token was revoked at { $at }
admin-token-expired = admin { $admin }'s token expired at { $at }; an owner can issue a new one
admin-needs-role = admin { $admin } is a { $role }; { $what ->
    [revoke_device] revoking a device
    [audit_log] reading the audit log
    [admins] listing admins
   *[other] { $what }
} needs an { $needed } or more
admin-whole-server = admin { $admin } sees only { $cell }; { $what ->
    [store_counts] the store's counts
    [node_series] this node's series
    [audit_log] the audit log
    [admins] the admin accounts
   *[other] { $what }
} is about the whole server
admin-outside = admin { $admin } sees only { $cell }, not { $asked }
admin-no-device-in = no device { $device } among those of { $cell }

## Starting the server

serve-store = cannot open the database: { $error }
serve-pki = cannot prepare keys and certificates: { $error }
serve-tls = TLS: { $error }
serve-photos = cannot open photo storage: { $error }
serve-bind = cannot listen on { $addr }: { $error }
admin-period-required = period is required, e.g. ?period=2026-11
admin-as-of-future = as_of "{ $value }" is in the future

## Routing rules (admin routing import)
routing-too-many = { $file }: { $count } rules; a rule set holds at most { $limit }
routing-too-many-reminders = { $file }: { $count } reminders { $which } the deadline; at most { $limit }
routing-bad-reminder = { $file }: reminder { $which } the deadline { $value } is not a duration up to a year (e.g. "2h", "1d", "0s")
routing-rule-value = { $file }: rule { $n }: { $field } { $value } is not one of: { $known }
routing-rule-party = { $file }: rule { $n } must name exactly one party: user = "…", agency = "…" or unit = true
routing-unknown-cell = rule { $n }: cell { $cell } does not exist
routing-retired-cell = rule { $n }: cell { $cell } is retired
routing-unknown-user = rule { $n }: user { $user } does not exist
routing-user-role = rule { $n }: user { $user } is a { $role }; a rule routes to property_company or community users (agencies by agency = "…")
