# patrolsync device messages in English. Every message ID is a stable error code and { $name }
# its parameters; zh-CN.ftl has the same IDs and parameters.

offline = No network. The record is saved on this phone and uploads when you are back online
timeout = The server did not answer within { $secs } s; retrying later
dns = Cannot find the server { $host }; check the network
tls_untrusted = Cannot verify the server { $server }; contact your admin
connection_lost = The connection to the server broke; continuing later
window_closed = The background sync window ({ $secs } s) closed; the rest goes at the next sync
revoked = An admin revoked this device; enroll it again with a new code
not_recognised = The server does not recognise this device; enroll it again with a new code
not_enrolled = This device is not enrolled; enter the code from your admin first
already_enrolled = This device is already enrolled (device { $device_id })
bad_enrollment_code = The enrollment code is malformed; scan or type it again
enrollment_refused = The enrollment code is unknown, used or expired; ask your admin for a new one
server = { $retryable ->
    [true] The server cannot take this now ({ $server_code }); retrying later
   *[false] The server refused the request ({ $server_code }); contact your admin
}
storage_full = The phone's storage is full; free some space and record again
storage = The local store failed; restart the app
file_unreadable = Cannot read the file { $path }
empty_photo = The photo file is empty; take it again
photo_too_large = The photo is too large; the server accepts at most { $max } bytes
photo_refused = The server did not accept this photo; add it again and sync
unsent_records = { $count } records have not been uploaded yet; sync first
other_users_records = This phone holds { $count } unsent records of { $user }; enroll it for { $user }, or sign out discarding them first
outside_scope = { $field ->
    [checkpoint] Checkpoint { $value } is outside your grid cells
    [grid_cell] Grid cell { $value } is outside your grid cells
   *[other] Hazard { $value } is outside your grid cells
}
unknown_checkpoint = Checkpoint { $checkpoint } does not exist
unknown_cell = Grid cell { $cell } does not exist
unknown_household = Household { $household } is not on the must-visit register
unknown_hazard = Hazard { $hazard } does not exist or is not visible to you
unknown_task = Task { $task } does not exist or is not visible to you
task_taken = { $by } accepted this task first
retired_checkpoint = Checkpoint { $checkpoint } is retired and takes no new check-ins
retired_cell = Grid cell { $cell } is retired and takes no new hazards
not_transferred = Hazard { $hazard } was not transferred to your agency
wrong_state = The hazard is { $status }, so { $action } cannot apply (another device acted first)
wrong_kind = { $information ->
    [true] An information report is acknowledged, not rectified: { $action } does not apply
   *[false] Only an information report is acknowledged; { $action } does not apply to a hazard
}
forbidden = Your role may not do this ({ $action })
missing = Required: { $field }
too_long = { $field } is too long: at most { $max } characters
out_of_range = { $field } is out of range
invalid = { $reason ->
    [unknown_value] { $field } has a value this server does not know (update the app)
    [log_full] this hazard's log is full ({ $field }); report a new hazard
    [seq_reused] record number reused ({ $field }); the record was not accepted, tell an admin
    [control_character] { $field } contains invisible control characters
    [implausible_time] { $field } is not a plausible time (check the phone's clock)
    [unsupported_op] the server is too old to accept this kind of record
    [invalid_id] { $field } is not a valid id
    [not_a_number] { $field } must be a number
    [too_many] { $field } has too many entries
    [invalid_hash] { $field } is not a valid photo hash
    [invalid] { $field } has a value that cannot apply
    [unknown] { $field } is not an item of the checklist
    [duplicate] { $field } is answered twice
   *[other] { $field } is not valid ({ $reason })
}
