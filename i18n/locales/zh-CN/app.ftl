# patrolsync 服务端、台账与报表用语（简体中文，默认语言）。en/app.ftl 必须有同样的 ID 和参数。

## 网格层级（可在配置 reports.level_names 中按城市改名）
level-1 = 街道
level-2 = 社区
level-3 = 小区
level-4 = 楼栋
level-other = 第 { $level } 级网格

## 隐患状态
state-reported = 已上报
state-rectifying = 整改中
state-rectified = 已整改待复核
state-transferred = 已移交
state-agency_handling = 移交单位处置中
state-closed = 已销号
state-merged = 已合并

## 隐患类别
category-blocked_fire_lane = 占用、堵塞消防车通道
category-damaged_facility = 消防设施损坏
category-blocked_evacuation = 疏散通道、安全出口堵塞
category-electrical = 电气线路隐患
category-gas = 燃气隐患
category-open_flame = 违规用火
category-flammable_storage = 违规存放易燃易爆物品
category-rental_housing = 出租屋隐患
category-renovation = 装修施工隐患
category-other = 其他

## 严重程度、处置方式、移交单位
severity-general = 一般
severity-major = 重大
handling-on_the_spot = 即查即改
handling-by_deadline = 限期整改
agency-police_station = 派出所
agency-fire_brigade = 消防救援站
agency-yes = 已移交（单位未记录）

## 签到
kind-patrol = 巡查
kind-inspection = 检查
kind-visit = 走访
method-nfc = NFC 标签
method-qr = 扫码
method-gps = 定位
method-manual = 手工填报
outcome-inspected = 已检查
outcome-locked = 锁门
outcome-not_found = 找不到
outcome-moved = 已搬迁
outcome-closed = 停业
outcome-renovation = 装修中
outcome-vacant = 空置
anomaly-out_of_radius = 不在检查点范围内
anomaly-mock_location = 模拟定位
anomaly-no_fix = 无定位
anomaly-clock_skew = 手机时间偏差
anomaly-impossible_speed = 移动速度异常
anomaly-double_tap = 重复签到
ontime-yes = 按期
ontime-late = 逾期销号
ontime-overdue = 已逾期
ontime-open = 未销号
ontime-merged = 已合并

## 台账名称（标题与工作表名）
ledger-inspections = 日常消防检查记录
ledger-patrols = 巡防巡查记录
ledger-hazard-disposal = 隐患处置记录
ledger-hazard-transfer = 隐患移交记录
ledger-title-period = 网格：{ $grid }　期间：{ $from } 至 { $to }
ledger-all-cells = 全部网格
ledger-about = 说明
# 日期（表格中的日期与时间）
date = { $year }年{ $month }月{ $day }日
date-time = { $year }年{ $month }月{ $day }日 { $time }

## 台账列名
col-no = 序号
col-time = 检查时间
col-cell = 所属网格
col-checkpoint = 检查点编号
col-checkpoint_name = 检查部位
col-user = 检查人
col-device = 设备
col-kind = 类型
col-method = 签到方式
col-outcome = 检查情况
col-anomalies = 异常标记
col-latitude = 纬度
col-longitude = 经度
col-accuracy_m = 定位精度（米）
col-template = 检查表
col-template_version = 检查表版本
col-answers = 检查内容
col-issues = 发现问题（项）
col-photos = 照片（张）
col-note = 备注
col-check_in_id = 记录编号
col-received_at = 上传时间
col-device_time_ms = 设备时间（毫秒）
col-hazard_id = 隐患编号
col-category = 隐患类别
col-severity = 严重程度
col-handling = 处置方式
col-reported_at = 发现时间
col-reporter = 发现人
col-deadline = 整改期限
col-status = 当前状态
col-notified_at = 告知时间
col-rectified_at = 整改完成时间
col-closed_at = 销号时间
col-closed_by = 复核人
col-on_time = 是否按期
col-transferred_to = 移交单位
col-events = 处置环节（次）
col-conflicts = 冲突（次）
col-log_length = 记录条数
col-chain_head = 记录链校验值
col-transferred_at = 移交时间
col-transferred_by = 移交人
col-agency = 接收单位
col-agency_deadline = 办理期限
col-accepted_at = 接收时间
col-returned_at = 退回时间
col-return_reason = 退回原因
col-fixed_at = 办结时间

## 台账说明页
about-ledger = 台账
about-period = 期间
about-cell = 网格
about-time_zone = 时区
about-as_of = 截至
about-check_ins = 签到记录（条）
about-flagged = 有异常标记（条）
about-hazards = 隐患（条）
about-log_entries = 覆盖的隐患记录（条）
about-log_entries_none = 无（签到台账）
about-chain_digest = 记录链摘要
about-how_to_verify = 核验方法
about-how_to_verify-text = 每行的“记录链校验值”是该隐患只增不改记录中最后一条的哈希（patrolsync_proto::hazard::chain_hash，由上一条的哈希与本条记录计算）；摘要是按行序对每条隐患的编号、记录条数和校验值计算的 SHA-256。

## 时长
dur-s = { $n } 秒
dur-min = { $n } 分钟
dur-h = { $n } 小时
dur-d = { $n } 天

## 角色
role-patroller = 巡查员
role-grid_manager = 网格长
role-agency = 移交单位
role-admin = 管理员

## 设备状况的原因
cause-revoked = 已停用：需要重新注册
cause-not_synced_yet = { $ago }前注册，尚未同步
cause-no_hello = 已 { $ago } 未联系服务器
cause-never_synced = { $ago }前注册，从未同步
cause-request_failed = 最近一次请求失败：{ $error }
cause-refused = { $ops } 条记录被拒收，{ $conflicts } 次冲突；最近一次在 { $ago }前
cause-unsent = { $ops } 条记录未上传，最早的已等待 { $ago }
cause-photos_missing = { $photos } 张照片已引用但未上传，最早的已等待 { $ago }

## 仪表盘
dash-title = 同步状况
dash-nav-fleet = 设备
dash-nav-hazards = 隐患
dash-nav-audit = 审计日志
dash-updated = 更新于 { $time }
dash-error = 无法加载：{ $why }
dash-forbidden = 无权查看：{ $why }
dash-never = 从未
dash-ago = { $dur }前
dash-ms = { $n } 毫秒
dash-since = （自 { $ago }起）
dash-oldest = （最早 { $dur }）
dash-none = 无。
dash-login-title = 管理员令牌
dash-login-help = 粘贴服务器数据目录中 { $file } 的内容，或 { $command } 打印的令牌。
dash-login-button = 打开仪表盘
dash-chart-collecting = 正在收集数据：从第二个采样点起开始绘图（每个采样间隔一个点）。
dash-chart-aria = 接收与积压随时间的变化
dash-series-ops = 每秒接收记录
dash-series-backlog = 设备上待传记录
dash-series-ack = 最慢确认（毫秒）
dash-legend = { $label }：{ $last }（最高 { $max }）
dash-state-healthy = 正常
dash-state-new = 新设备
dash-state-lagging = 滞后
dash-state-silent = 失联
dash-state-erroring = 出错
dash-state-revoked = 已停用
dash-photos-missing = { $count } 张缺失，自 { $ago }起
dash-photos-pending = 待传 { $size }
dash-ingest-title = 接收与积压（本节点，最近一小时）
dash-backlog = 设备上待传：{ $ops } 条记录（最早 { $oldest }），照片 { $size }；{ $missing } 张照片已引用但未上传。
dash-devices-title = 设备（{ $count }）
dash-devices-filtered = 设备 — { $state }（{ $count }）
dash-all = （全部）
dash-col-state = 状态
dash-col-device = 设备
dash-col-user = 用户
dash-col-why = 原因
dash-col-last-seen = 最近联系
dash-col-last-push = 最近上传
dash-col-outbox = 待传
dash-col-photos = 照片
dash-col-rejected = 拒收 / 冲突
dash-col-rtt = 往返时延
dash-col-app = 应用 / SDK 版本
dash-stuck-title = 未上传的照片
dash-col-photo = 照片
dash-col-record = 记录
dash-col-owed = 应上传设备
dash-col-since = 起始
dash-record-check_in = 签到
dash-record-hazard = 隐患
dash-back-fleet = ← 设备列表
dash-nothing = 一切正常。
dash-device = 设备编号
dash-enrolled = 注册时间
dash-revoked = 停用时间
dash-last-push-pull = 最近上传 / 下载
dash-outbox-detail = { $count } 条，最早 { $oldest }；已确认至第 { $acked } 条
dash-last-error = 最近错误
dash-clock-offset = 时钟偏差
dash-traffic = 流量
dash-traffic-detail = 收 { $in }，发 { $out }
dash-missing-title = 缺失的照片
dash-history-title = 每次联系时的报告（最新在前）
dash-n-ops = { $count } 条记录
dash-photo-bytes = 照片 { $size }
dash-clock = 时钟偏差 { $ms }
dash-rtt-ms = 往返 { $ms }
dash-rejections-title = 被拒收的记录
dash-op = 第 { $seq } 条
dash-conflicts-title = 冲突
dash-back-streets = ← 全部街道
dash-all-streets = 全部街道
dash-hazards-title = 各网格隐患（共 { $total } 条，逾期 { $overdue } 条）
dash-col-cell = 网格
dash-col-total = 合计
dash-col-overdue = 逾期
dash-no-hazards = 暂无隐患。
dash-audit = 审计日志
dash-audit-title = 审计日志（{ $count } 条；{ $verdict }）
dash-audit-verified = 哈希链校验通过
dash-audit-broken = 哈希链在第 { $at } 条断开
dash-outcome-ok = 成功
dash-col-seq = 序号
dash-col-when = 时间
dash-col-who = 操作人
dash-col-from = 来源
dash-col-what = 操作
dash-col-on = 对象
dash-col-outcome = 结果
dash-nothing-yet = 暂无记录。
dash-action-seed_demo = 创建演示网格
dash-action-enroll = 签发注册码
dash-action-revoke = 停用设备
dash-action-import_grid = 导入网格
dash-action-retire = 撤销网格或检查点
dash-action-import_checkpoints = 导入检查点
dash-action-import_people = 导入人员
dash-action-template_publish = 发布检查表
dash-action-assign = 分配网格
dash-action-unassign = 取消分配
dash-action-export = 导出台账
dash-action-admin_add = 添加管理员
dash-action-admin_revoke = 撤销管理员

## 报表（巡查频次合规、考评）
report-compliance = 巡查频次合规
report-evaluation = 考评
report-compliance-title = 巡查频次合规 { $period }（{ $zone }），截至 { $as_of }
report-evaluation-title = 考评（按{ $by ->
    [person] 人员
   *[cell] 网格
}）{ $period }（{ $zone }），截至 { $as_of }
about-report = 报表
about-rate = 合规率
about-rate-text = 已检 / 应检；有异常标记的签到单独统计，不计为已检
col-name = 名称
col-level = 层级
col-checkpoints = 检查点数
col-due = 应检
col-inspected = 已检
col-could_not_inspect = 未能检查
col-flagged = 存疑
col-missed = 漏检
col-open = 未到期
col-rate = 合规率
col-person = 人员
col-role = 角色
col-compliance = 合规率
col-check_ins = 签到次数
col-flagged_check_ins = 异常签到
col-hazards_found = 发现隐患
col-closed_on_time = 按期销号
col-closed_late = 逾期销号
col-overdue = 逾期未改
col-transferred = 移交
