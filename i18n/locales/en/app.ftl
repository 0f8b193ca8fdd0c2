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
