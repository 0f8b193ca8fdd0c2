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
state-acknowledged = 已知悉

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
category-outside_workers = 外来人员就业
category-assisted_person = 新增残障等帮扶人员
category-unstable_factor = 消防安全不稳定因素

## 重点单位（户籍化管理）
unit-kind-rental_housing = 出租房屋
unit-kind-small_venue = 九小场所
unit-kind-school = 学校
unit-kind-hospital = 医院
unit-kind-high_rise = 高层建筑
unit-kind-market = 市场
unit-kind-warehouse = 仓库
unit-kind-drug_handling = 涉药单位
unit-kind-other = 其他
unit-risk-low = 低
unit-risk-medium = 中
unit-risk-high = 高

## 六必访人群
household-group-hardship = 困难群众
household-group-elderly_alone = 独居老人
household-group-disabled = 残疾家庭
household-group-migrant = 流动人口
household-group-unemployed = 失业人员
household-group-assisted = 重点帮扶人员

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
visit-outcome-inspected = 已走访
visit-outcome-locked = 无人在家
visit-outcome-not_found = 找不到住户
visit-outcome-moved = 已搬离
visit-outcome-closed = 暂时外出
visit-outcome-renovation = 房屋装修中
visit-outcome-vacant = 房屋空置
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
ledger-visits = 六必访走访记录
ledger-help-calls = 求助响应记录
ledger-hazard-disposal = 隐患处置记录
ledger-hazard-transfer = 隐患移交记录
ledger-title-period = 网格：{ $grid }　期间：{ $from } 至 { $to }
ledger-all-cells = 全部网格
ledger-title-unit-period = 单位：{ $grid }　期间：{ $from } 至 { $to }
ledger-unit-place = { $name }（{ $code }，网格 { $cell }）
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
about-unit = 重点单位
about-visits = 走访记录（条）
about-help_calls = 求助（起）
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
role-property_company = 物业
role-community = 社区

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
dash-nav-units = 重点单位
dash-nav-map = 网格地图
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
dash-nav-tasks = 派单
dash-tasks-open-title = 待办任务（{ $count } 项）
dash-tasks-response-title = 各街道派单响应情况（{ $period }）
dash-col-created = 派单时间
dash-col-urgency = 紧急程度
dash-col-task-status = 状态
dash-col-offered = 当前派给
dash-col-assignee = 承办人
dash-col-made = 派单数
dash-col-undone = 未完成
dash-col-escalated = 已上报网格长
dash-col-to-accept = 接单用时
dash-col-to-arrive = 到场用时
dash-col-to-complete = 完成用时
dash-minutes = { $p50 } 分钟（90分位 { $p90 }）
dash-units-title = 重点单位（{ $count } 家）
dash-no-units = 还没有登记重点单位；用 patrolsync admin units import 导入
dash-back-units = ← 重点单位列表
dash-col-code = 编码
dash-col-name = 名称
dash-col-kind = 类型
dash-col-risk = 风险等级
dash-col-responsible = 责任人
dash-col-checkpoints = 检查点
dash-col-checkpoint = 检查点
dash-col-hazard = 隐患
dash-col-category = 类别
dash-col-deadline = 整改期限
dash-col-description = 描述
dash-address = 地址
dash-self-check = 四个能力自评
dash-unit-check-ins = 检查记录（最近 { $shown } 条，共 { $total } 条）
dash-unit-hazards = 隐患（最近 { $shown } 条，共 { $total } 条）
dash-map-title = 网格地图（{ $period }）
dash-map-no-boundaries = 这一级网格还没有边界；导入网格时可附上边界（WKT 或 GeoJSON）
dash-map-by-compliance = 按巡查合规率着色
dash-map-by-hazards = 按隐患着色
dash-map-open = 未办结隐患 { $n } 条，逾期 { $overdue } 条
dash-map-compliance-good = 合规率 ≥ 90%
dash-map-compliance-fair = 60%–90%
dash-map-compliance-poor = < 60%
dash-map-compliance-none = 无应检
dash-map-hazards-good = 无未办结隐患
dash-map-hazards-fair = 有未办结隐患
dash-map-hazards-poor = 有逾期隐患
dash-map-hazards-none = —
dash-warnings-title = 预警：临近或超过整改期限的隐患，巡查落后的网格
dash-trend-title = 隐患趋势（近 12 周，按类别）
dash-col-week = 周（起）
dash-col-rate = 合规率
dash-col-due = 应检
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
report-visits = 六必访走访情况
report-visits-title = 六必访走访情况 { $period }（{ $zone }），截至 { $as_of }
report-routing-title = 隐患直报派送情况（按责任方）：
report-routing-row = { $party }：派送 { $routed } 起，接收 { $accepted } 起，整改 { $fixed } 起，逾期 { $overdue } 起；接收用时中位数 { $accept } 小时，整改用时中位数 { $fix } 小时
report-tasks = 派单响应情况
report-tasks-title = 派单响应情况 { $period }（{ $zone }），截至 { $as_of }

## 动态信息公开（公开页面）
public-title = 消防安全网格化管理动态信息公开
public-subtitle = 截至 { $as_of }（{ $zone }）
public-note = 巡查合规率 = 已检 / 应检；隐患整改销号率 = 本月上报的隐患中已复核销号的比例（不含信息类上报）。不足 { $min } 项的数字不予公开，以免指向具体住户或单位。本页不含任何人员、电话、设备、住户或位置信息。
public-col-area = 街道 / 社区
public-col-compliance = { $period } 巡查合规率
public-col-closure = { $period } 隐患销号率
public-withheld = 数量过少，不予公开
public-other-lang = English
report-compliance-title = 巡查频次合规 { $period }（{ $zone }），截至 { $as_of }
report-evaluation-title = 考评（按{ $by ->
    [person] 人员
   *[cell] 网格
}）{ $period }（{ $zone }），截至 { $as_of }
about-report = 报表
about-rate = 合规率
about-rate-text = 已检 / 应检；有异常标记的签到单独统计，不计为已检
about-visit_rate = 走访率
about-visit-rate-text = 已访 / 应访：走访签到注明该户且见到住户即为已访；未遇（无人在家、已搬离等）计入应访但不算已访
about-visit-group = 人群：{ $group }
about-visit-counts = 户数 { $households }，应访 { $due }，已访 { $visited }，未遇 { $not_visited }，漏访 { $missed }，未到期 { $open }
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
col-households = 必访户数
col-visits_due = 应访
col-visited = 已访
col-not_visited = 未遇
col-visits_missed = 漏访
col-visits_open = 未到期
col-visit_rate = 走访率
col-household = 户编码
col-group = 人群类别
col-address = 住址
col-visit_outcome = 走访情况
col-called_at = 求助时间
col-task_status = 当前状态
col-tasks_made = 派单数
col-task_open = 待派
col-task_offered = 已派单
col-task_accepted = 已接单
col-task_arrived = 已到场
col-task_completed = 已完成
col-task_escalated = 已上报网格长
col-task_cancelled = 已取消
col-accept_p50_min = 接单用时中位数（分钟）
col-accept_p90_min = 接单用时90分位（分钟）
col-arrive_p50_min = 到场用时中位数（分钟）
col-arrive_p90_min = 到场用时90分位（分钟）
col-complete_p50_min = 完成用时中位数（分钟）
col-complete_p90_min = 完成用时90分位（分钟）
col-urgency = 紧急程度
col-offered = 派单对象
col-assignee = 承办人
col-accept_min = 接单用时（分钟）
col-arrive_min = 到场用时（分钟）
col-complete_min = 完成用时（分钟）
col-result = 处置结果
col-task_id = 任务编号
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
col-information_reports = 信息类上报
col-acknowledged = 已知悉
col-reported_blocked_fire_lane = 上报：占用、堵塞消防车通道
col-reported_damaged_facility = 上报：消防设施损坏
col-reported_blocked_evacuation = 上报：疏散通道、安全出口堵塞
col-reported_electrical = 上报：电气线路隐患
col-reported_gas = 上报：燃气隐患
col-reported_open_flame = 上报：违规用火
col-reported_flammable_storage = 上报：违规存放易燃易爆物品
col-reported_rental_housing = 上报：出租屋隐患
col-reported_renovation = 上报：装修施工隐患
col-reported_other = 上报：其他
col-reported_outside_workers = 上报：外来人员就业
col-reported_assisted_person = 上报：新增残障等帮扶人员
col-reported_unstable_factor = 上报：消防安全不稳定因素

## 命令行
cli-serve-data-dir = 数据目录        { $dir }（{ $backend }）
cli-serve-ca = CA 指纹         sha256:{ $fingerprint }
cli-serve-dial = 设备连接地址    { $address }
cli-serve-public = 公开页面        { $url }（无需令牌）
cli-serve-next = 下一步：创建演示网格并注册一台设备（在另一个终端中）：
cli-serve-code-placeholder = <上面打印的 patrolsync://… 字符串>
cli-serve-stop = 按 Ctrl-C 停止（进行中的请求会先完成）
cli-serve-draining = 正在停止：等待进行中的请求完成…
cli-serve-stopped = 已停止
cli-enroll-issued = 已为 { $user } 签发一次性注册码（{ $role }，网格 { $cells }），有效期至 { $until }；在设备上运行：
cli-enroll-issued-no-cells = 已为 { $user } 签发一次性注册码（{ $role }，不负责网格：接收路由规则派送的隐患），有效期至 { $until }；在设备上运行：
cli-stats-devices = 设备            { $n }（已停用 { $revoked }）
cli-stats-users = 用户            { $n }
cli-stats-cells = 网格            { $n }
cli-stats-checkpoints = 检查点          { $n }
cli-stats-check-ins = 签到            { $n }（重复签到 { $double } 次，只计一次）
cli-stats-hazards = 隐患            { $n }
cli-stats-photos = 照片            { $n }（已引用但缺失 { $missing }）
cli-stats-rejected = 被拒收的记录    { $n }
cli-stats-enrollment = 未使用的注册码  { $n }
cli-no-missing-photos = 没有缺失的照片
cli-missing-photo-owed = 应由设备 { $device }（{ $user }）上传，自 { $since }
cli-no-devices = 还没有注册的设备；用 `patrolsync admin enroll` 签发注册码
cli-devices-header = 设备                                  状态      用户          最近联系    待传记录  缺失照片  原因
cli-device-id = 设备          { $id }（{ $name }）
cli-device-user = 用户          { $user }（{ $role }）
cli-device-state = 状态          { $state }{ $why }
cli-device-enrolled = 注册          { $at }
cli-device-revoked = 停用          { $at }
cli-device-last-seen = 最近联系      { $at }
cli-device-last-push = 最近上传      { $at }
cli-device-last-pull = 最近下载      { $at }
cli-device-outbox = 待传          { $ops } 条，最早 { $oldest } 毫秒；已确认至第 { $acked } 条
cli-device-photos = 照片          缺失 { $missing } 张，待传 { $pending } 字节
cli-device-rejected = 拒收          { $ops } 条，冲突 { $conflicts } 次
cli-device-last-error = 最近错误      { $error }（{ $at }）
cli-device-link = 连接          往返 { $rtt } 毫秒，收 { $bytes_in } 字节，发 { $bytes_out } 字节；时钟偏差 { $offset } 毫秒
cli-device-versions = 版本          应用 { $app }，SDK { $sdk }
cli-device-hello = 联系 { $at }  待传 { $ops } 条（最早 { $oldest } 毫秒）  照片 { $photos } 字节  往返 { $rtt } 毫秒
cli-device-missing-photo = 缺失照片 { $sha }（{ $kind } { $record }），自 { $since }
cli-device-rejected-op = 第 { $seq } 条被拒收（{ $at }）：{ $code } { $field }：{ $message }
cli-device-conflict = 第 { $seq } 条冲突（{ $at }）：{ $message }
cli-revoked = 已停用设备 { $id }（{ $user }，{ $name }）；运行中的服务器会在一秒内断开它的连接
cli-no-rejections = 没有被拒收的记录
cli-rejection = 设备 { $device } 第 { $seq } 条  { $code } { $field }：{ $message }
cli-no-conflicts = 没有冲突
cli-conflict = 设备 { $device } 第 { $seq } 条  { $message }
cli-hazard-id = 隐患          { $id }，网格 { $cell }
cli-hazard-status = 状态          { $status }{ $held }
cli-hazard-fields = 内容          { $category } / { $severity } / { $handling }{ $deadline }
cli-hazard-description = 描述          { $text }
cli-hazard-merged = 已合并到      { $into }
cli-hazard-log = 记录          { $entries } 条，记录链校验值 { $head }（{ $verified ->
    [true] 校验通过
   *[false] 校验不通过
}）
cli-hazard-conflict = 冲突：{ $why }
cli-scope-device = 设备          { $device }（{ $user }，{ $role }）
cli-scope-feed = 数据源        { $feed }
cli-scope-holds = 持有          { $kind } { $id }，自第 { $since } 次变更
cli-scope-cells = 网格          { $n } { $codes }
cli-scope-checkpoints = 检查点        { $n } { $codes }
cli-scope-units = 重点单位      { $n } { $codes }
cli-scope-households = 必访户        { $n } { $codes }
cli-scope-hazards = 隐患          { $n }
cli-retire-already = { $code } 早已撤销；没有变化
cli-retired = 已撤销 { $code }：{ $cells } 个网格、{ $checkpoints } 个检查点；历史记录保留，新记录将被拒收
cli-template-checked = { $file }：检查表 { $id }（{ $items } 项）无误；未发布（--check）
cli-template-published = 已发布 { $id } 第 { $version } 版（{ $items } 项）；设备下次同步时获取
cli-template-unchanged = { $id } 第 { $version } 版内容相同；未发布
cli-no-templates = 还没有发布检查表；见 `patrolsync admin template publish --help`
cli-assigned = { $user }：{ $removed ->
    [true] 取消
   *[false] 新增
} { $changed } 项网格分配
cli-seed-city = 模拟城市已建好：{ $cells } 个网格（S001…S115 → …-C1 → …-K1 → …-B1），{ $checkpoints } 个检查点；{ $changed } 行变更，用时 { $secs } 秒
cli-seed-demo = 演示城市已建好：{ $cells } 个网格（S1…S2 → S1-C1… → S1-C1-K1… → S1-C1-K1-B1…），{ $checkpoints } 个检查点（…-B1-P1、…-B1-P2）；{ $changed } 行变更
cli-hazard-held = （由{ $agency }办理）
cli-hazard-deadline = ，整改期限 { $at }
cli-import-checked = { $file }：{ $rows } 行{ $what ->
    [cells] 网格
    [checkpoints] 检查点
    [units] 重点单位
    [households] 必访户
   *[people] 人员
}数据无误；未写入（--check）
cli-imported = { $file }：读取 { $rows } 行{ $what ->
    [cells] 网格
    [checkpoints] 检查点
    [units] 重点单位
    [households] 必访户
   *[people] 人员
}数据，变更 { $changed } 行{ $up_to_date ->
    [true] （已是最新）
   *[false] {""}
}
cli-no-units = 还没有登记重点单位；用 `patrolsync admin units import FILE` 导入
cli-unit-row = { $code }  { $name }（{ $kind }，{ $risk }风险）  网格 { $cell }  责任人 { $person } { $phone }  检查点 { $checkpoints } 个
cli-unit-none = 无
cli-unit-title = 重点单位      { $code } { $name }，网格 { $cell }
cli-unit-kind = 类型          { $kind }，{ $risk }风险
cli-unit-address = 地址          { $address }
cli-unit-person = 责任人        { $person }，电话 { $phone }
cli-unit-self-check = 四个能力自评  { $date }
cli-unit-checkpoints = 检查点        { $codes }
cli-unit-check-ins = 检查记录（最近 { $shown } 条，共 { $total } 条）：
cli-unit-check-in = { $at }  { $checkpoint }  { $user }  { $kind } { $outcome }
cli-unit-hazards = 隐患（最近 { $shown } 条，共 { $total } 条）：
cli-unit-hazard = { $id }  { $status }  { $category }  期限 { $deadline }  { $description }
cli-no-households = 还没有登记必访户；用 `patrolsync admin households import FILE` 导入
cli-household-row = { $code }  { $group }  网格 { $cell }  { $address }  联系人 { $contact } { $phone }
cli-households-removed = 已将 { $n } 户移出名册（{ $codes }）：地址和联系人已清除，设备下次同步时删除
cli-admin-added = 管理员 { $name }（{ $role }，范围 { $subtree }）；上面的令牌只显示这一次：请求时作为 Authorization: Bearer <令牌> 发送
cli-no-admins = 没有具名管理员；数据目录中的 admin.token 是初始所有者
cli-admins-header = 名称                 角色      范围           创建时间               到期时间               撤销
cli-no = 否
cli-admin-revoked = 管理员 { $name } 已于 { $at } 撤销；其令牌不再有效
cli-audit-verified = { $count } 条；哈希链校验通过
cli-audit-broken = { $count } 条；哈希链在第 { $at } 条断开：该条写入后被改动过
cli-audit-unwritten = 警告：无法写入审计日志：{ $error }
cli-exported = { $rows } 行{ $written }；{ $about }
cli-exported-to = ，已写入 { $file }

## 设备命令行
dev-hazard-reported = 已上报隐患 { $id }（网格 { $cell }）；同步后发送
dev-unknown-here = 本机尚未收到
dev-transition-recorded = 已记录 { $kind }（隐患 { $id }，本机状态：{ $status }）；同步后发送
dev-edited = 已修改隐患 { $id } 的 { $field }；同步后发送
dev-no-hazards = 您负责的网格内没有隐患（同步后接收）
dev-hazard = 隐患 { $id }：{ $status }（{ $category }，{ $severity }，{ $handling }）
dev-deadline = 整改期限 { $at }
dev-reminded-before = 督促：距整改期限还有 { $hours } 小时
dev-reminded-after = 督促：已超过整改期限 { $hours } 小时，尚未整改
dev-escalated = 已逾期：上报至 { $cell }（第 { $level } 级）
dev-history = { $kind }（{ $role }）：{ $from } → { $to }
dev-history-conflict = { $kind }（{ $role }）：冲突，未生效：{ $why }
dev-enrolled = 已注册：设备 { $device }，用户 { $user }（{ $role }），网格 { $cells }；服务器 { $server }
dev-checked-in = 已在 { $checkpoint } 签到（{ $id }）；{ $pending } 条记录等待同步
dev-watching = 正在等待变化；按 Ctrl-C 停止
dev-watch-synced = 已同步：发送 { $sent } 条，接收 { $received } 条，游标 { $cursor }
dev-watch-failed = 同步失败：{ $error }{ $retry }
dev-retrying = （{ $dur }后重试）
dev-watch-news = 服务器有新内容（游标 { $cursor }）
dev-watch-stopped = 已停止：{ $reason }
dev-no-photos = 没有照片
dev-photo-saved = 已保存 { $file }（{ $size } 字节，SHA-256 校验通过）
dev-no-checkpoints = 还没有检查点；请先同步
dev-duty-off = 未在岗：不保存也不发送位置
dev-duty-on = 在岗；尚无位置（用 --lat --lon 提供）
dev-duty-on-at = 在岗，位置 { $lat }, { $lon }；下次同步时发送
dev-duty-position-off = 未在岗：位置未保存（请先运行 `duty on`）
dev-task-row = { $id }  { $status }  { $kind }  { $cell }  承办人 { $assignee }  当前派给 { $offered }
dev-no-tasks = 您的网格内没有任务（或尚未同步）
dev-task-unknown = 本设备上没有任务 { $id }（请先同步）
dev-task-conflict = 冲突：{ $why }
dev-task-stepped = 任务 { $id }：{ $step }您（已排队；`sync` 时发送）
dev-task-arrived-checkin = 任务 { $id }：已到场，已在其检查点打卡 { $check_in }（已排队；`sync` 时发送）
dev-no-units = 您的网格内还没有重点单位（或尚未同步）
dev-unit = { $code }  { $name }（{ $kind }，{ $risk }风险）  网格 { $cell }  责任人 { $person } { $phone }  检查点 { $checkpoints }
dev-no-households = 您的网格内还没有必访户（或尚未同步）
dev-household = { $code }  { $group }  网格 { $cell }  { $address }  联系人 { $contact } { $phone }
dev-synced = 同步完成，用时 { $ms } 毫秒：发送 { $sent } 条，接收成功 { $applied } 条，服务器已有 { $duplicates } 条，被拒收 { $rejected } 条，待传 { $pending } 条；收到 { $received } 项变更；上传照片 { $photos } 张（{ $bytes } 字节）
dev-photo-refused = 照片未被接收：{ $photo }
dev-see-why = 查看原因：{ $command }
dev-status-device = 设备       { $id }（{ $user }）→ { $server }
dev-status-not-enrolled = 设备       未注册
dev-status-oldest = ，最早的已等待 { $dur }
dev-status-pending = 待传       { $ops } 条{ $oldest }
dev-status-rejected = 被拒收     { $ops } 条
dev-status-last-sync = 最近同步   { $at }
dev-status-last-error = 最近错误   { $error }（{ $at }）
dev-no-rejected = 没有被拒收的记录
dev-rejected = 第 { $seq } 条 { $kind } { $record }：{ $message }（{ $code } { $field }）
dev-error = 错误：{ $error }
dev-scope-granted = 已纳入您的范围：{ $kind } { $id }（{ $reason }）
dev-scope-revoked = 已移出您的范围：{ $kind } { $id }（{ $reason }）；本机删除 { $dropped } 项
scope-kind-cell = 网格
scope-kind-hazard = 隐患
scope-kind-feed = 全部数据
scope-reason-assigned = 已分配
scope-reason-unassigned = 已取消分配
scope-reason-retired = 已撤销
scope-reason-transferred = 已移交
scope-reason-returned = 已退回
scope-reason-transfer_lost = 移交已撤回
scope-reason-transferred_elsewhere = 已移交其他单位
scope-reason-routed = 已派送给您
scope-reason-reset = 重新同步
scope-reason-unknown = 原因未知

cli-device-why = ：{ $reasons }
transition-notify = 告知整改
transition-fix_on_spot = 当场整改
transition-submit_fix = 提交整改
transition-verify_pass = 复核通过
transition-verify_fail = 复核不通过
transition-transfer = 移交
transition-agency_accept = 单位接收
transition-agency_return = 单位退回
transition-agency_fix = 单位办结
transition-reopen = 重新打开
transition-merge = 合并
transition-acknowledge = 知悉
transition-accept = 接收整改
dev-unsynced = （未同步）
cli-error = 错误：{ $error }

## 台账上的检查项结果

answer-ok = 合格
answer-issue = 有问题
answer-not_applicable = 不适用
ledger-answer = { $item }：{ $value }
ledger-answer-note = { $item }：{ $value }（{ $note }）

## admin routing
cli-routing-published = 已发布第 { $version } 版路由规则（{ $rules } 条；督促时点 { $reminders }）；此后收到的隐患按此派送
cli-routing-unchanged = 现行第 { $version } 版路由规则内容相同；未发布
cli-routing-checked = { $file }：{ $rules } 条规则无误，将成为第 { $version } 版（督促时点 { $reminders }）；未发布（--check）
cli-routing-checked-same = { $file }：{ $rules } 条规则无误，与现行第 { $version } 版相同；未发布（--check）
cli-routing-none = 尚未发布路由规则：所有隐患只报送所在网格的网格长；见 `patrolsync admin routing import --help`
cli-routing-version = 第 { $version } 版，发布于 { $published }：{ $rules } 条规则；督促时点 { $reminders }
cli-routing-rule = #{ $n } { $cell }：{ $categories } → { $party }
cli-routing-rule-named = #{ $n } { $cell }：{ $categories } → { $party }（{ $name }）
cli-routing-every-category = 所有隐患类别
cli-routing-party-user = 用户 { $user }
cli-routing-party-unit = 重点单位的责任人账号
cli-routing-hit = { $cell } 的“{ $category }”：按第 { $version } 版第 { $n } 条规则（网格 { $rule_cell }）派送给 { $party }
cli-routing-hit-named = { $cell } 的“{ $category }”：按第 { $version } 版第 { $n } 条规则（网格 { $rule_cell }，{ $name }）派送给 { $party }
cli-routing-fallback = { $cell } 的“{ $category }”：没有规则派送{ $version ->
    [0] （尚未发布规则）
   *[other] （第 { $version } 版）
}；只报送所在网格的网格长
cli-routing-passed = 第 { $n } 条规则适用但未派送：{ $reason ->
    [no_unit] 该检查点不属于任何重点单位
    [no_responsible_user] 该重点单位未登记责任人账号
   *[no_user] 其用户已不存在或已不是物业、社区
}
cli-routing-managers = 无论如何都会收到的网格长（{ $count } 人）：{ $managers }
cli-routing-no-managers = { $cell } 及其上级网格都没有网格长：没有其他人会收到
cli-unknown-value = { $field } 的值 { $value } 不在以下范围内：{ $known }

## 任务（派单）
task-kind-help_call = 求助
task-kind-inspect = 检查
task-kind-verify_fix = 整改复查
task-kind-visit = 走访
task-urgency-normal = 一般
task-urgency-urgent = 紧急
task-status-open = 待派
task-status-offered = 已派单
task-status-accepted = 已接单
task-status-arrived = 已到场
task-status-completed = 已完成
task-status-escalated = 已上报网格长
task-status-cancelled = 已取消
task-result-found_fine = 情况正常
task-result-help_given = 已提供帮助
task-result-hazard_reported = 发现隐患并上报
task-step-task = 创建
task-step-offer = 派给
task-step-accept = 接单：
task-step-decline = 拒单：
task-step-arrive = 到场：
task-step-complete = 完成：
task-step-escalate = 无人接单，已上报网格长
task-step-cancel = 取消：
cli-task-created = 已创建任务 { $id }：{ $cell } 的{ $kind }；将按距离由近及远派给该网格在岗的巡查员
cli-no-tasks = 没有任务
cli-task-row = { $id }  { $status }  { $kind }（{ $urgency }）  { $cell }  承办人 { $assignee }  当前派给 { $offered }
cli-task-bad-id = { $id } 不是任务编号（UUID）
cli-task-unknown = 任务 { $id } 不存在
cli-task-conflict = 冲突：{ $code ->
    [task_taken] { $with } 已先接单
    [wrong_state] 任务当时为“{ $with }”，此步未生效
    [role] { $with }无权执行此步
   *[before_task] 时间早于任务创建，此步未生效
}
