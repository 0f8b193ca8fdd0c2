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
