# patrolsync 设备端提示语（简体中文，默认语言）。
# 每条消息的 ID 是一个稳定的错误代码；{ $name } 是它的参数。en.ftl 必须有同样的 ID 和参数。

offline = 网络不可用，记录已保存在本机，联网后自动上传
timeout = 服务器 { $secs } 秒内没有响应，稍后自动重试
dns = 无法解析服务器地址 { $host }，请检查网络
tls_untrusted = 无法确认服务器 { $server } 的身份，请联系管理员
connection_lost = 与服务器的连接中断，稍后自动继续
window_closed = 后台同步时间（{ $secs } 秒）已用完，其余内容下次同步
revoked = 本设备已被管理员停用，请用新的注册码重新注册
not_recognised = 服务器不认识本设备，请用新的注册码重新注册
not_enrolled = 本设备尚未注册，请先输入管理员提供的注册码
already_enrolled = 本设备已注册（设备号 { $device_id }）
bad_enrollment_code = 注册码格式不正确，请重新扫描或输入
enrollment_refused = 注册码无效、已使用或已过期，请向管理员索取新的注册码
server = { $retryable ->
    [true] 服务器暂时无法处理（{ $server_code }），稍后自动重试
   *[false] 服务器拒绝了请求（{ $server_code }），请联系管理员
}
storage_full = 手机存储空间已满，请清理后再记录
storage = 本机数据存储出错，请重启应用
file_unreadable = 无法读取文件 { $path }
empty_photo = 照片文件是空的，请重新拍摄
photo_too_large = 照片太大，服务器最多接收 { $max } 字节
photo_refused = 服务器未接收这张照片，请重新添加后再同步
unsent_records = 还有 { $count } 条记录未上传，请先同步
other_users_records = 本机还有 { $user } 的 { $count } 条记录未上传，请为 { $user } 注册，或先退出并放弃这些记录
outside_scope = { $field ->
    [checkpoint] 该检查点不在您负责的网格内（{ $value }）
    [grid_cell] 该网格不在您负责的范围内（{ $value }）
   *[other] 该隐患不在您负责的网格内（{ $value }）
}
unknown_checkpoint = 检查点 { $checkpoint } 不存在
unknown_cell = 网格 { $cell } 不存在
unknown_household = 必访户 { $household } 不在登记名册中
unknown_hazard = 隐患 { $hazard } 不存在或您无权查看
unknown_task = 任务 { $task } 不存在或您无权查看
task_taken = { $by } 已先接受此任务
retired_checkpoint = 检查点 { $checkpoint } 已停用，不能再签到
retired_cell = 网格 { $cell } 已撤销，不能再上报隐患
not_transferred = 隐患 { $hazard } 没有移交给您所在的单位
wrong_state = 隐患当前为 { $status } 状态，不能执行 { $action }（另一台设备的操作在先）
wrong_kind = { $information ->
    [true] 信息类报告只需知悉，不进入整改，不能执行 { $action }
   *[false] 只有信息类报告才需知悉，隐患不能执行 { $action }
}
forbidden = 您的角色无权进行此操作（{ $action }）
missing = 缺少必填项：{ $field }
too_long = 内容过长：{ $field } 最多 { $max } 个字
out_of_range = 数值超出允许范围：{ $field }
invalid = { $reason ->
    [unknown_value] 选项无效：{ $field }（请更新应用）
    [log_full] 这条隐患的记录已满（{ $field }），请新报一条隐患
    [seq_reused] 记录编号重复（{ $field }），该记录未被接收，请联系管理员
    [control_character] 内容含有不可见的控制字符：{ $field }
    [implausible_time] 时间不合理：{ $field }（请检查手机时间）
    [unsupported_op] 服务器版本过旧，暂不接收这类记录
    [invalid_id] 编号格式不正确：{ $field }
    [not_a_number] 应填写数字：{ $field }
    [too_many] 数量超过上限：{ $field }
    [invalid_hash] 照片校验值格式不正确：{ $field }
    [invalid] 填写的值无效：{ $field }
    [unknown] 检查表中没有这一项：{ $field }
    [duplicate] 同一项填写了两次：{ $field }
   *[other] 填写有误：{ $field }（{ $reason }）
}
