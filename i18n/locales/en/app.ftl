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
ledger-hazard-disposal = Hazard disposal record
ledger-hazard-transfer = Hazard transfer record
ledger-title-period = { $grid } · { $from } – { $to }
ledger-all-cells = all cells
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
report-compliance-title = compliance { $period } ({ $zone }), as of { $as_of }
report-evaluation-title = evaluation by { $by ->
    [person] person
   *[cell] cell
} { $period } ({ $zone }), as of { $as_of }
about-report = report
about-rate = rate
about-rate-text = inspected / due; flagged check-ins are counted apart, not as inspected
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
