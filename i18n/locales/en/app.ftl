# patrolsync server, ledger and report wording (English). zh-CN/app.ftl has the same ids and
# parameters.

## Grid levels (a city renames them in the config's reports.level_names)
level-1 = Street
level-2 = Community
level-3 = Compound
level-4 = Building
level-other = Level { $level }

## Hazard states
state-reported = reported
state-rectifying = rectifying
state-rectified = rectified
state-transferred = transferred
state-agency_handling = agency handling
state-closed = closed
state-merged = merged
state-acknowledged = acknowledged

## Hazard categories
category-blocked_fire_lane = blocked fire lane
category-damaged_facility = damaged fire facility
category-blocked_evacuation = blocked evacuation route
category-electrical = electrical
category-gas = gas
category-open_flame = open flame
category-flammable_storage = flammable storage
category-rental_housing = rental housing
category-renovation = renovation works
category-other = other
category-outside_workers = outside workers taken on
category-assisted_person = newly assisted people
category-unstable_factor = a factor unsettling fire safety

## Key units (the register)
unit-kind-rental_housing = rental housing
unit-kind-small_venue = small venue
unit-kind-school = school
unit-kind-hospital = hospital
unit-kind-high_rise = high-rise
unit-kind-market = market
unit-kind-warehouse = warehouse
unit-kind-drug_handling = drug-handling unit
unit-kind-other = other
unit-risk-low = low
unit-risk-medium = medium
unit-risk-high = high

## Must-visit groups
household-group-hardship = people in hardship
household-group-elderly_alone = elderly living alone
household-group-disabled = family with disabled members
household-group-migrant = migrants
household-group-unemployed = unemployed
household-group-assisted = other assisted people

## Severity, handling, agencies
severity-general = general
severity-major = major
handling-on_the_spot = fixed on the spot
handling-by_deadline = by deadline
agency-police_station = police station
agency-fire_brigade = fire brigade
agency-yes = yes (agency not recorded)

## Check-ins
kind-patrol = patrol
kind-inspection = inspection
kind-visit = visit
method-nfc = NFC tag
method-qr = QR code
method-gps = GPS
method-manual = manual
outcome-inspected = inspected
outcome-locked = locked
outcome-not_found = not found
outcome-moved = moved away
outcome-closed = business closed
outcome-renovation = under renovation
outcome-vacant = vacant
visit-outcome-inspected = visited
visit-outcome-locked = nobody home
visit-outcome-not_found = household not found
visit-outcome-moved = moved away
visit-outcome-closed = away for now
visit-outcome-renovation = home under renovation
visit-outcome-vacant = home vacant
anomaly-out_of_radius = out of radius
anomaly-mock_location = mock location
anomaly-no_fix = no position
anomaly-clock_skew = clock skew
anomaly-impossible_speed = impossible speed
anomaly-double_tap = double tap
ontime-yes = on time
ontime-late = closed late
ontime-overdue = overdue
ontime-open = open
ontime-merged = merged

## Ledger names (title and sheet)
ledger-inspections = Fire safety inspection record
ledger-patrols = Patrol record
ledger-visits = Must-visit household record
ledger-hazard-disposal = Hazard disposal record
ledger-hazard-transfer = Hazard transfer record
ledger-title-period = { $grid } · { $from } – { $to }
ledger-all-cells = all cells
ledger-title-unit-period = { $grid } · { $from } – { $to }
ledger-unit-place = { $name } ({ $code }, cell { $cell })
ledger-about = about
# Dates (in tables)
date = { $year }-{ $month }-{ $day }
date-time = { $year }-{ $month }-{ $day } { $time }

## Ledger columns
col-no = No.
col-time = time
col-cell = cell
col-checkpoint = checkpoint
col-checkpoint_name = checkpoint_name
col-user = user
col-device = device
col-kind = kind
col-method = method
col-outcome = outcome
col-anomalies = anomalies
col-latitude = latitude
col-longitude = longitude
col-accuracy_m = accuracy_m
col-template = template
col-template_version = template_version
col-answers = answers
col-issues = issues
col-photos = photos
col-note = note
col-check_in_id = check_in_id
col-received_at = received_at
col-device_time_ms = device_time_ms
col-hazard_id = hazard_id
col-category = category
col-severity = severity
col-handling = handling
col-reported_at = reported_at
col-reporter = reporter
col-deadline = deadline
col-status = status
col-notified_at = notified_at
col-rectified_at = rectified_at
col-closed_at = closed_at
col-closed_by = closed_by
col-on_time = on_time
col-transferred_to = transferred_to
col-events = events
col-conflicts = conflicts
col-log_length = log_length
col-chain_head = chain_head
col-transferred_at = transferred_at
col-transferred_by = transferred_by
col-agency = agency
col-agency_deadline = agency_deadline
col-accepted_at = accepted_at
col-returned_at = returned_at
col-return_reason = return_reason
col-fixed_at = fixed_at

## The ledger's about sheet
about-ledger = ledger
about-period = period
about-cell = cell
about-time_zone = time zone
about-as_of = as of
about-unit = key unit
about-visits = visits
about-check_ins = check-ins
about-flagged = flagged
about-hazards = hazards
about-log_entries = hazard log entries covered
about-log_entries_none = none (check-in ledger)
about-chain_digest = chain digest
about-how_to_verify = how to verify
about-how_to_verify-text = each row's chain_head is the hash of the last entry of that hazard's append-only log (patrolsync_proto::hazard::chain_hash over the previous hash and the entry); the digest is SHA-256 over each covered hazard's id, log length and chain head, in row order

## Durations
dur-s = { $n } s
dur-min = { $n } min
dur-h = { $n } h
dur-d = { $n } days

## Roles
role-patroller = patroller
role-grid_manager = grid manager
role-agency = agency
role-admin = admin
role-property_company = property company
role-community = community office

## Why a device is in its state
cause-revoked = revoked: it must be enrolled again
cause-not_synced_yet = enrolled { $ago } ago, not synced yet
cause-no_hello = no Hello for { $ago }
cause-never_synced = enrolled { $ago } ago and never synced
cause-request_failed = last request failed: { $error }
cause-refused = { $ops } ops refused, { $conflicts } conflicts; the last { $ago } ago
cause-unsent = { $ops } ops unsent, the oldest for { $ago }
cause-photos_missing = { $photos } photo(s) referenced but not uploaded, the oldest for { $ago }

## Dashboard
dash-title = sync health
dash-nav-fleet = Fleet
dash-nav-hazards = Hazards
dash-nav-audit = Audit
dash-nav-units = Key units
dash-nav-map = Map
dash-updated = updated { $time }
dash-error = Could not load: { $why }
dash-forbidden = Not yours to see: { $why }
dash-never = never
dash-ago = { $dur } ago
dash-ms = { $n } ms
dash-since = { " " }(since { $ago })
dash-oldest = { " " }(oldest { $dur })
dash-none = None.
dash-login-title = Admin token
dash-login-help = Paste the contents of { $file } from the server's data directory, or a token { $command } printed.
dash-login-button = Open dashboard
dash-chart-collecting = Collecting: the chart starts with the second sample (one per sampling interval).
dash-chart-aria = ingest and backlog over time
dash-series-ops = ops ingested / s
dash-series-backlog = ops waiting on devices
dash-series-ack = slowest ack, ms
dash-legend = { $label }: { $last } (max { $max })
dash-state-healthy = healthy
dash-state-new = new
dash-state-lagging = lagging
dash-state-silent = silent
dash-state-erroring = erroring
dash-state-revoked = revoked
dash-photos-missing = { $count } missing since { $ago }
dash-photos-pending = { $size } pending
dash-ingest-title = Ingest and backlog (this node, last hour)
dash-backlog = Waiting on devices: { $ops } ops (oldest { $oldest }), { $size } of photos; { $missing } photos referenced but missing.
dash-devices-title = Devices ({ $count })
dash-devices-filtered = Devices — { $state } ({ $count })
dash-all = (all)
dash-col-state = State
dash-col-device = Device
dash-col-user = User
dash-col-why = Why
dash-col-last-seen = Last seen
dash-col-last-push = Last push
dash-col-outbox = Outbox
dash-col-photos = Photos
dash-col-rejected = Rejected / conflicts
dash-col-rtt = RTT
dash-col-app = App / SDK
dash-stuck-title = Stuck photos
dash-col-photo = Photo
dash-col-record = Record
dash-col-owed = Owed by
dash-col-since = Since
dash-record-check_in = check-in
dash-record-hazard = hazard
dash-back-fleet = ← fleet
dash-nothing = Nothing to report.
dash-device = Device
dash-enrolled = Enrolled
dash-revoked = Revoked
dash-last-push-pull = Last push / pull
dash-outbox-detail = { $count } ops, oldest { $oldest }; acknowledged through op { $acked }
dash-last-error = Last error
dash-clock-offset = Clock offset
dash-traffic = Traffic
dash-traffic-detail = { $in } in, { $out } out
dash-missing-title = Missing photos
dash-history-title = Reports at Hello (newest first)
dash-n-ops = { $count } ops
dash-photo-bytes = { $size } photos
dash-clock = clock { $ms }
dash-rtt-ms = RTT { $ms }
dash-rejections-title = Rejected ops
dash-op = op { $seq }
dash-conflicts-title = Conflicts
dash-back-streets = ← all streets
dash-all-streets = All streets
dash-hazards-title = Hazards by cell and status ({ $total }, { $overdue } overdue)
dash-col-cell = Cell
dash-col-total = Total
dash-col-overdue = Overdue
dash-no-hazards = No hazards.
dash-audit = Audit log
dash-audit-title = Audit log ({ $count } entries; { $verdict })
dash-audit-verified = the hash chain verifies
dash-audit-broken = the hash chain breaks at entry { $at }
dash-outcome-ok = ok
dash-col-seq = #
dash-col-when = When
dash-col-who = Who
dash-col-from = From
dash-col-what = What
dash-col-on = On
dash-col-outcome = Outcome
dash-units-title = Key units ({ $count })
dash-no-units = No key units registered; import them with patrolsync admin units import
dash-back-units = ← Key units
dash-col-code = Code
dash-col-name = Name
dash-col-kind = Kind
dash-col-risk = Risk
dash-col-responsible = Responsible
dash-col-checkpoints = Checkpoints
dash-col-checkpoint = Checkpoint
dash-col-hazard = Hazard
dash-col-category = Category
dash-col-deadline = Deadline
dash-col-description = Description
dash-address = Address
dash-self-check = Four-capabilities self-check
dash-unit-check-ins = Inspections (latest { $shown } of { $total })
dash-unit-hazards = Hazards (latest { $shown } of { $total })
dash-map-title = Grid map ({ $period })
dash-map-no-boundaries = No boundaries at this level yet; a grid import may carry them (WKT or GeoJSON)
dash-map-by-compliance = Colour by patrol compliance
dash-map-by-hazards = Colour by hazards
dash-map-open = { $n } open hazards, { $overdue } overdue
dash-map-compliance-good = compliance ≥ 90%
dash-map-compliance-fair = 60%–90%
dash-map-compliance-poor = < 60%
dash-map-compliance-none = nothing due
dash-map-hazards-good = no open hazard
dash-map-hazards-fair = open hazards
dash-map-hazards-poor = overdue hazards
dash-map-hazards-none = —
dash-warnings-title = Early warnings: hazards near or past their deadline, cells falling behind
dash-trend-title = Hazard trend (last 12 weeks, by category)
dash-col-week = Week of
dash-col-rate = Compliance
dash-col-due = Due
dash-nothing-yet = Nothing yet.
dash-action-seed_demo = seed demo
dash-action-enroll = enroll
dash-action-revoke = revoke
dash-action-import_grid = import grid
dash-action-retire = retire
dash-action-import_checkpoints = import checkpoints
dash-action-import_people = import people
dash-action-template_publish = publish template
dash-action-assign = assign
dash-action-unassign = unassign
dash-action-export = export
dash-action-admin_add = add admin
dash-action-admin_revoke = revoke admin

## Reports (cadence compliance, evaluation)
report-compliance = compliance
report-evaluation = evaluation
report-visits = must-visit households
report-visits-title = must-visit households { $period } ({ $zone }), as of { $as_of }

## The public progress page
public-title = Fire-safety grid: public progress
public-subtitle = As of { $as_of } ({ $zone })
public-note = Patrol compliance = inspected / due; hazard closure = of the hazards reported in the month, those verified and closed (information reports apart). Figures under { $min } are withheld so no household or business can be singled out. This page holds no person, phone, device, household or position.
public-col-area = Street / community
public-col-compliance = { $period } patrol compliance
public-col-closure = { $period } hazards closed
public-withheld = too few to publish
public-other-lang = 中文
report-compliance-title = compliance { $period } ({ $zone }), as of { $as_of }
report-evaluation-title = evaluation by { $by ->
    [person] person
   *[cell] cell
} { $period } ({ $zone }), as of { $as_of }
about-report = report
about-rate = rate
about-rate-text = inspected / due; flagged check-ins are counted apart, not as inspected
about-visit_rate = visit rate
about-visit-rate-text = visited / due: a slot is visited when a visit check-in naming the household found someone home; not visited (nobody home, moved away, …) is due but not visited
about-visit-group = group: { $group }
about-visit-counts = households { $households }, due { $due }, visited { $visited }, not visited { $not_visited }, missed { $missed }, open { $open }
col-name = name
col-level = level
col-checkpoints = checkpoints
col-due = due
col-inspected = inspected
col-could_not_inspect = could_not_inspect
col-flagged = flagged
col-missed = missed
col-open = open
col-rate = rate
col-households = households
col-visits_due = visits due
col-visited = visited
col-not_visited = not visited
col-visits_missed = missed
col-visits_open = open
col-visit_rate = visit rate
col-household = household
col-group = group
col-address = address
col-visit_outcome = visit
col-person = person
col-role = role
col-compliance = compliance
col-check_ins = check_ins
col-flagged_check_ins = flagged_check_ins
col-hazards_found = hazards_found
col-closed_on_time = closed_on_time
col-closed_late = closed_late
col-overdue = overdue
col-transferred = transferred
col-information_reports = information reports
col-acknowledged = acknowledged
col-reported_blocked_fire_lane = reported: blocked fire lane
col-reported_damaged_facility = reported: damaged fire facility
col-reported_blocked_evacuation = reported: blocked evacuation route
col-reported_electrical = reported: electrical
col-reported_gas = reported: gas
col-reported_open_flame = reported: open flame
col-reported_flammable_storage = reported: flammable storage
col-reported_rental_housing = reported: rental housing
col-reported_renovation = reported: renovation works
col-reported_other = reported: other
col-reported_outside_workers = reported: outside workers taken on
col-reported_assisted_person = reported: newly assisted people
col-reported_unstable_factor = reported: a factor unsettling fire safety

## The command line
cli-serve-data-dir = data dir        { $dir } ({ $backend })
cli-serve-ca = CA fingerprint  sha256:{ $fingerprint }
cli-serve-dial = devices dial    { $address }
cli-serve-public = public page     { $url } (no token)
cli-serve-next = next: create the demo grid and enroll a device (in another terminal):
cli-serve-code-placeholder = <the patrolsync://… string printed>
cli-serve-stop = press Ctrl-C to stop (in-flight requests finish first)
cli-serve-draining = shutting down: draining in-flight requests…
cli-serve-stopped = stopped
cli-enroll-issued = one-time code for { $user } ({ $role }, cells { $cells }), valid until { $until }; on the device run:
cli-enroll-issued-no-cells = one-time code for { $user } ({ $role }, no cells: the hazards routing rules send it), valid until { $until }; on the device run:
cli-stats-devices = devices          { $n } ({ $revoked } revoked)
cli-stats-users = users            { $n }
cli-stats-cells = grid cells       { $n }
cli-stats-checkpoints = checkpoints      { $n }
cli-stats-check-ins = check-ins        { $n } ({ $double } double taps, counted once)
cli-stats-hazards = hazards          { $n }
cli-stats-photos = photos           { $n } ({ $missing } referenced but missing)
cli-stats-rejected = rejected ops     { $n }
cli-stats-enrollment = open enrollment  { $n }
cli-no-missing-photos = no missing photos
cli-missing-photo-owed = owed by device { $device } ({ $user }) since { $since }
cli-no-devices = no devices enrolled yet; create a code with `patrolsync admin enroll`
cli-devices-header = DEVICE                                STATE     USER          LAST SEEN   OUTBOX   PHOTOS  WHY
cli-device-id = device        { $id } ({ $name })
cli-device-user = user          { $user } ({ $role })
cli-device-state = state         { $state }{ $why }
cli-device-enrolled = enrolled      { $at }
cli-device-revoked = revoked       { $at }
cli-device-last-seen = last seen     { $at }
cli-device-last-push = last push     { $at }
cli-device-last-pull = last pull     { $at }
cli-device-outbox = outbox        { $ops } ops, oldest { $oldest } ms; acknowledged through op { $acked }
cli-device-photos = photos        { $missing } missing, { $pending } bytes pending
cli-device-rejected = rejected      { $ops } ops, { $conflicts } conflicts
cli-device-last-error = last error    { $error } at { $at }
cli-device-link = link          RTT { $rtt } ms, { $bytes_in } bytes in, { $bytes_out } bytes out; clock offset { $offset } ms
cli-device-versions = versions      app { $app }, SDK { $sdk }
cli-device-hello = hello { $at }  outbox { $ops } (oldest { $oldest } ms)  photos { $photos } B  RTT { $rtt } ms
cli-device-missing-photo = missing photo { $sha } ({ $kind } { $record }) since { $since }
cli-device-rejected-op = rejected op { $seq } at { $at }: { $code } { $field }: { $message }
cli-device-conflict = conflict op { $seq } at { $at }: { $message }
cli-revoked = revoked device { $id } ({ $user }, { $name }); a running server closes its connections within a second
cli-no-rejections = no rejected ops
cli-rejection = device { $device } seq { $seq }  { $code } { $field }: { $message }
cli-no-conflicts = no conflicts
cli-conflict = device { $device } seq { $seq }  { $message }
cli-hazard-id = hazard        { $id } in { $cell }
cli-hazard-status = status        { $status }{ $held }
cli-hazard-fields = fields        { $category } / { $severity } / { $handling }{ $deadline }
cli-hazard-description = description   { $text }
cli-hazard-merged = merged into   { $into }
cli-hazard-log = log           { $entries } entries, chain head { $head } ({ $verified ->
    [true] verifies
   *[false] DOES NOT VERIFY
})
cli-hazard-conflict = CONFLICT: { $why }
cli-scope-device = device        { $device } ({ $user }, { $role })
cli-scope-feed = feed          { $feed }
cli-scope-holds = holds         { $kind } { $id } since change { $since }
cli-scope-cells = cells         { $n } { $codes }
cli-scope-checkpoints = checkpoints   { $n } { $codes }
cli-scope-units = key units     { $n } { $codes }
cli-scope-households = households    { $n } { $codes }
cli-scope-hazards = hazards       { $n }
cli-retire-already = { $code } was already retired; nothing changed
cli-retired = retired { $code }: { $cells } cell(s) and { $checkpoints } checkpoint(s); their history stays, new records there are refused
cli-template-checked = { $file }: template { $id } with { $items } items is fine; nothing published (--check)
cli-template-published = published { $id } version { $version } ({ $items } items); devices get it at their next pull
cli-template-unchanged = { $id } version { $version } already has this content; nothing published
cli-no-templates = no templates published; see `patrolsync admin template publish --help`
cli-assigned = { $user }: { $changed } assignment(s) { $removed ->
    [true] removed
   *[false] added
}
cli-seed-city = synthetic city ready: { $cells } grid cells (S001…S115 → …-C1 → …-K1 → …-B1), { $checkpoints } checkpoints; { $changed } rows changed in { $secs } s
cli-seed-demo = demo city ready: { $cells } grid cells (S1…S2 → S1-C1… → S1-C1-K1… → S1-C1-K1-B1…), { $checkpoints } checkpoints (…-B1-P1, …-B1-P2); { $changed } rows changed
cli-hazard-held = { " " }(held by { $agency })
cli-hazard-deadline = , deadline { $at }
cli-import-checked = { $file }: { $rows } { $what } rows are fine; nothing written (--check)
cli-imported = { $file }: { $rows } { $what } rows read, { $changed } changed{ $up_to_date ->
    [true] { " " }(already up to date)
   *[false] {""}
}
cli-no-units = no key units registered; import them with `patrolsync admin units import FILE`
cli-unit-row = { $code }  { $name } ({ $kind }, { $risk } risk)  cell { $cell }  responsible { $person } { $phone }  { $checkpoints } checkpoints
cli-unit-none = none
cli-unit-title = key unit      { $code } { $name }, cell { $cell }
cli-unit-kind = kind          { $kind }, { $risk } risk
cli-unit-address = address       { $address }
cli-unit-person = responsible   { $person }, phone { $phone }
cli-unit-self-check = self-check    { $date } (four capabilities)
cli-unit-checkpoints = checkpoints   { $codes }
cli-unit-check-ins = inspections (latest { $shown } of { $total }):
cli-unit-check-in = { $at }  { $checkpoint }  { $user }  { $kind } { $outcome }
cli-unit-hazards = hazards (latest { $shown } of { $total }):
cli-unit-hazard = { $id }  { $status }  { $category }  deadline { $deadline }  { $description }
cli-no-households = no must-visit households registered; import them with `patrolsync admin households import FILE`
cli-household-row = { $code }  { $group }  cell { $cell }  { $address }  contact { $contact } { $phone }
cli-households-removed = { $n } households taken off the register ({ $codes }): address and contact erased; devices drop them at their next sync
cli-admin-added = admin { $name } ({ $role }, subtree { $subtree }); the token above is shown once: send it as Authorization: Bearer <token>
cli-no-admins = no named admins; the data dir's admin.token is the bootstrap owner
cli-admins-header = name                 role      subtree        created                expires                revoked
cli-no = no
cli-admin-revoked = admin { $name } revoked at { $at }; its token no longer works
cli-audit-verified = { $count } entries; the hash chain verifies
cli-audit-broken = { $count } entries; THE HASH CHAIN BREAKS AT ENTRY { $at }: it was changed after it was written
cli-audit-unwritten = warning: could not write the audit log: { $error }
cli-exported = { $rows } rows{ $written }; { $about }
cli-exported-to = { " " }written to { $file }

## The device command line
dev-hazard-reported = reported hazard { $id } in { $cell }; sync to send it
dev-unknown-here = unknown here yet
dev-transition-recorded = recorded { $kind } on { $id } (now { $status } on this device); sync to send it
dev-edited = edited { $field } of { $id }; sync to send it
dev-no-hazards = no hazards in your cells (sync to receive them)
dev-hazard = hazard { $id }: { $status } ({ $category }, { $severity }, { $handling })
dev-deadline = deadline { $at }
dev-reminded-before = REMINDER (督促): the deadline is in { $hours } h
dev-reminded-after = REMINDER (督促): { $hours } h past the deadline, not fixed yet
dev-escalated = OVERDUE: escalated to { $cell } (level { $level })
dev-history = { $kind } by { $role }: { $from } -> { $to }
dev-history-conflict = { $kind } by { $role }: CONFLICT, not applied: { $why }
dev-enrolled = enrolled as device { $device } for { $user } ({ $role }), cells { $cells }; server { $server }
dev-checked-in = recorded check-in { $id } at { $checkpoint }; { $pending } op(s) waiting to sync
dev-watching = watching for changes; Ctrl-C to stop
dev-watch-synced = synced: { $sent } sent, { $received } received, cursor { $cursor }
dev-watch-failed = sync failed: { $error }{ $retry }
dev-retrying = { " " }(retrying in { $dur })
dev-watch-news = server has news (cursor { $cursor })
dev-watch-stopped = stopped: { $reason }
dev-no-photos = no photos
dev-photo-saved = saved { $file } ({ $size } bytes, SHA-256 verified)
dev-no-checkpoints = no checkpoints yet; run sync
dev-duty-off = off duty: no position is kept or sent
dev-duty-on = on duty; no position yet (give one with --lat --lon)
dev-duty-on-at = on duty at { $lat }, { $lon }; the next sync sends it
dev-duty-position-off = not on duty: the position was not kept (run `duty on` first)
dev-no-units = no key units in your cells (or not synced yet)
dev-unit = { $code }  { $name } ({ $kind }, { $risk } risk)  cell { $cell }  responsible { $person } { $phone }  checkpoints { $checkpoints }
dev-no-households = no must-visit households in your cells (or not synced yet)
dev-household = { $code }  { $group }  cell { $cell }  { $address }  contact { $contact } { $phone }
dev-synced = synced in { $ms } ms: { $sent } sent, { $applied } applied, { $duplicates } already on the server, { $rejected } rejected, { $pending } pending; { $received } changes received; { $photos } photos uploaded ({ $bytes } bytes)
dev-photo-refused = photo refused: { $photo }
dev-see-why = see why with: { $command }
dev-status-device = device     { $id } ({ $user }) → { $server }
dev-status-not-enrolled = device     not enrolled
dev-status-oldest = , oldest { $dur } old
dev-status-pending = pending    { $ops } op(s){ $oldest }
dev-status-rejected = rejected   { $ops }
dev-status-last-sync = last sync  { $at }
dev-status-last-error = last error { $error } ({ $at })
dev-no-rejected = no rejected ops
dev-rejected = seq { $seq } { $kind } { $record }: { $message } ({ $code } { $field })
dev-error = error: { $error }
dev-scope-granted = now in your scope: { $kind } { $id } ({ $reason })
dev-scope-revoked = no longer in your scope: { $kind } { $id } ({ $reason }); { $dropped } dropped from this device
scope-kind-cell = cell
scope-kind-hazard = hazard
scope-kind-feed = feed
scope-reason-assigned = assigned
scope-reason-unassigned = unassigned
scope-reason-retired = retired
scope-reason-transferred = transferred
scope-reason-returned = returned
scope-reason-transfer_lost = transfer lost
scope-reason-transferred_elsewhere = transferred elsewhere
scope-reason-routed = routed to you
scope-reason-reset = reset
scope-reason-unknown = unknown

cli-device-why = : { $reasons }
transition-notify = notify
transition-fix_on_spot = fix on the spot
transition-submit_fix = submit fix
transition-verify_pass = verify: pass
transition-verify_fail = verify: fail
transition-transfer = transfer
transition-agency_accept = agency accept
transition-agency_return = agency return
transition-agency_fix = agency fix
transition-reopen = reopen
transition-merge = merge
transition-acknowledge = acknowledge
transition-accept = accept
dev-unsynced = { " " }(unsynced)
cli-error = error: { $error }

## A check-in's answers on a ledger form

answer-ok = fine
answer-issue = issue
answer-not_applicable = not applicable
ledger-answer = { $item }: { $value }
ledger-answer-note = { $item }: { $value } ({ $note })

## admin routing
cli-routing-published = published routing rules version { $version } ({ $rules } rules; reminders { $reminders }); reports that arrive from now on are routed by it
cli-routing-unchanged = routing rules version { $version } in force already has this content; nothing published
cli-routing-checked = { $file }: { $rules } rules are fine and would be version { $version } (reminders { $reminders }); nothing published (--check)
cli-routing-checked-same = { $file }: { $rules } rules are fine and equal version { $version } in force; nothing published (--check)
cli-routing-none = no routing rules published: every hazard goes to its cell's managers alone; see `patrolsync admin routing import --help`
cli-routing-version = version { $version }, published { $published }: { $rules } rules; reminders { $reminders }
cli-routing-rule = #{ $n } { $cell }: { $categories } → { $party }
cli-routing-rule-named = #{ $n } { $cell }: { $categories } → { $party }  ({ $name })
cli-routing-every-category = every hazard category
cli-routing-party-user = user { $user }
cli-routing-party-unit = the key unit's responsible user
cli-routing-hit = { $category } in { $cell }: rule #{ $n } of version { $version } (cell { $rule_cell }) sends it to { $party }
cli-routing-hit-named = { $category } in { $cell }: rule #{ $n } of version { $version } (cell { $rule_cell }, { $name }) sends it to { $party }
cli-routing-fallback = { $category } in { $cell }: no rule routes it{ $version ->
    [0] {" "}(no rules published)
   *[other] {" "}(version { $version })
}; it goes to the cell's managers alone
cli-routing-passed = rule #{ $n } held but routed nothing: { $reason ->
    [no_unit] no key unit at the checkpoint
    [no_responsible_user] the key unit names no responsible user
   *[no_user] its user is gone or no longer a property company or community
}
cli-routing-managers = managers who get it in any case ({ $count }): { $managers }
cli-routing-no-managers = no grid manager is assigned { $cell } or a cell above it: nobody else gets it
cli-unknown-value = { $field } { $value } is not one of: { $known }
