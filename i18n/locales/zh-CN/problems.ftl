# 出了什么问题：给命令行前的人看（英文版也用于日志和 JSON 接口）：存储、导入、配置、报表日历、检查表模板。
# en/problems.ftl 必须有同样的 ID 和参数。

## 通用

unknown-choice = { $what } 的值「{ $value }」无效，可选：{ $known }
file-unreadable = 无法读取 { $file }：{ $error }
file-unwritable = 无法写入 { $file }：{ $error }
file-unparsed = { $file } 格式有误：{ $error }
file-format = { $file }：请把文件命名为 { $formats }，以便识别格式

## 存储

store-database = 数据库出错：{ $error }
store-migrate = 数据库升级失败：{ $error }
store-corrupt = 数据库中的数据无法读取：{ $detail }
store-injected = 测试注入的存储故障：{ $what }
store-stopping = 服务器正在关闭，不再接收写入
store-no-cell = 网格 { $cell } 不存在
store-no-cell-seed = 网格 { $cell } 不存在；请先运行 `patrolsync admin seed-demo` 或导入网格
store-cell-retired = 网格 { $cell } 已撤销，请分配仍在使用的网格
store-no-parent = 网格 { $cell }：上级网格 { $parent } 不存在
store-cell-moved = 网格 { $cell } 位于 { $old }，不能移到 { $new }（请撤销它，再以新编码添加新位置）
store-checkpoint-no-cell = 检查点 { $checkpoint }：网格 { $cell } 不存在
store-no-checkpoint = 检查点 { $checkpoint } 不存在
store-no-unit = 重点单位 { $unit } 不存在；单位清单见 `patrolsync admin units list`
store-unit-moved = 重点单位 { $unit } 属于网格 { $old }，不能移到 { $new }（请以新编码登记新位置）
store-unit-checkpoint-outside = 重点单位 { $unit }：检查点 { $checkpoint } 不在网格 { $cell } 及其下级网格内
store-household-moved = 必访户 { $household } 属于网格 { $old }，不能移到 { $new }（搬家的住户请以新编码登记）
store-no-household = 必访户 { $household } 不在登记名册中；名册见 `patrolsync admin households list`
store-no-user = 用户 { $user } 不存在；请先导入人员或为其注册设备
store-no-device = 没有设备 { $device }；设备号见 `patrolsync admin devices`
store-not-enrolled = 设备 { $device } 未注册
store-device-vanished = 设备 { $device } 在注册过程中被删除
store-device-id-short = 设备号「{ $device }」太短：请输入完整设备号或至少前 8 个字符
store-device-ambiguous = 有 { $n } 台设备的设备号以 { $device } 开头，请输入更长的设备号
store-no-task = 任务 { $task } 不存在
store-task-retired = 网格 { $cell } 已撤销，不再接收新任务
store-task-place = { $what ->
    [household] 住户
    [unit] 重点单位
   *[checkpoint] 检查点
} { $code } 不在网格 { $cell } 内（或不存在）
store-task-invalid = 任务无效：{ $detail }
store-no-hazard = 隐患 { $hazard } 不存在
store-no-admin = 没有名为 { $name } 的管理员账号
store-admin-exists = 管理员账号 { $name } 已存在；请先吊销它或换一个名字
store-agency-needed = 单位用户需要指定 --agency police_station（派出所）或 --agency fire_brigade（消防救援站）
store-agency-only = --agency 只用于单位用户（agency），不能用于 { $role }
store-user-empty = 用户名为空
store-cells-needed = 角色 { $role } 至少需要一个网格（--grid）
store-party-no-cells = 角色 { $role } 只接收路由规则派送的隐患，不负责网格：登记时不要加 --grid
store-demo-enrollment = 演示设备注册失败：{ $error }

## 导入（网格、检查点、人员）

import-place = { $unit ->
    [line] 第 { $n } 行
   *[feature] 第 { $n } 个要素
}
import-row = { $at }：{ $message }
import-row-column = { $at }，{ $column } 列：{ $message }
import-rows = { $one ->
    [true] 有 1 处有误
   *[false] 共 { $n } 处有误
}，未导入任何内容：
import-more = ……另有 { $n } 处
import-header = 第 1 行：{ $error }
import-csv = CSV 格式有误：{ $error }
import-no-column = 表头缺少 `{ $column }` 列
import-unknown-column = 未知的列（可用的列：{ $known }）
import-column-twice = { $column } 列出现了两次（例如同时有「编码」和「单位编码」），无法确定用哪一列
import-no-header = 第 { $column } 列有内容，但表头没有这一列
import-not-geojson = 不是 GeoJSON：{ $error }
import-not-collection = 应为 GeoJSON FeatureCollection
import-empty = 为空
import-bad-code = 「{ $value }」：编码只能用字母、数字、'-'、'_' 或 '.'，最多 64 个字符
import-not-geometry = 不是 GeoJSON 几何图形：{ $error }
import-not-wkt = 不是 WKT：{ $error }
import-not-polygon = 边界必须是 Polygon 或 MultiPolygon
import-bad-level = 「{ $value }」：层级应为 1（街道）到 4（楼栋）
import-duplicate = { $value } 已在{ $unit ->
    [line] 第 { $n } 行
   *[feature] 第 { $n } 个要素
}出现过
import-cell-moved = { $cell } 目前在「{ $parent }」之下；不支持移动网格（请撤销它，再以新编码导入）
import-needs-parent = 第 { $level } 级网格需要填写上级网格
import-retired = { $value } 已撤销
import-unknown-parent = { $parent } 既不在本文件中，也不在网格中
import-wrong-level = { $parent } 是第 { $parent_level } 级网格，其下级应为第 { $expected } 级，而不是第 { $level } 级
import-not-point = 检查点的几何图形必须是 Point
import-cell-unknown = 「{ $cell }」不在网格中
import-number-range = 「{ $value }」：应为 { $min } 到 { $max } 之间的数字
import-coordinates-range = 坐标超出范围
import-both-coordinates = 纬度和经度要么都填，要么都不填
import-unknown-code = 「{ $value }」无效，可选：{ $known }
import-people-csv = 人员只能从 CSV 或 XLSX 导入（name,role,agency,cells）
import-name-length = 应为 1 到 128 个字符
import-agency-needed = 单位用户需要填写 police_station（派出所）或 fire_brigade（消防救援站）
import-agency-only = 只用于单位用户（agency）
import-not-live = { $cell } 不是网格中在用的网格
import-xlsx = 无法读取 XLSX 文件 { $file }：{ $error }
import-xlsx-empty = XLSX 文件 { $file } 的第一个工作表是空的
import-xlsx-cell = 单元格的值是公式错误（{ $error }）
import-too-long = 最多 { $max } 个字符
import-bad-phone = 「{ $value }」不是电话号码（3 到 20 位数字，可含 +、-、空格和括号）
import-bad-date = 「{ $value }」：日期应写成 2026-11-20 这样的格式
import-checkpoint-unknown = 检查点 { $checkpoint } 不存在

## 检查表模板

tpl-item-value = { $file }：第 { $n } 项（{ $item }）的 { $field }：「{ $value }」无效，可选：{ $known }
tpl-definition = { $file }：{ $problem }
tpl-rule = { $field ->
    [id] 模板编号「{ $value }」只能用字母、数字、'-'、'_' 或 '.'，最多 64 个字符
    [name] 模板缺少名称（name）
    [items] 模板没有检查项（items）
    [items_id] { $reason ->
        [duplicate] 第 { $n } 项的编号 { $item } 与前面的检查项重复
       *[other] 第 { $n } 项的编号「{ $item }」只能用字母、数字、'-'、'_' 或 '.'
    }
    [items_label] 第 { $n } 项（{ $item }）缺少说明（label）
   *[other] { $field }：{ $reason }
}
tpl-toml = { $file } 第 { $line } 行第 { $column } 列：{ $error }

## 配置

cfg-read = 无法读取配置文件 { $path }：{ $error }
cfg-parse = 配置文件 { $path } 有误：{ $error }
cfg-invalid = 配置无效：{ $problem }
cfg-at-least = { $key } = { $value } 太小（至少 { $min }）
cfg-above-zero = { $keys }：必须大于 0
cfg-between = { $key } = { $value } 应在 { $min } 到 { $max } 之间
cfg-ingest-writers = ingest_writers = { $value } 应为 1、2、4 或 8（须整除 16 个计数分片，使两个写入者不共用同一分片）
cfg-database-url = database_url 应以 sqlite: 或 postgres: 开头，实际为「{ $value }」
cfg-escalation = escalation.interval 至少为 1s，escalation.check_every 至少为 100ms
cfg-dispatch = dispatch.offer_timeout 至少为 1s，dispatch.check_every 至少为 100ms，dispatch.duty_ttl 至少为 1m
cfg-s3-bucket = photos.backend = "s3" 时需要设置 photos.bucket
cfg-visit-group = reports.visit_cadence：「{ $value }」不是六必访人群（hardship、elderly_alone、disabled、migrant、unemployed、assisted）

## 报表日历

cal-cadence = 未知的频次「{ $value }」：可用 daily（每日）、weekly（每周）、monthly（每月）或 quarterly（每季度）
cal-config-cadence = reports.cadence：未知的频次「{ $value }」：可用 daily、weekly、monthly 或 quarterly
cal-cadence-empty = reports.cadence 需要为每一级网格各填一项，从大到小
cal-time-zone = reports.time_zone = 「{ $value }」不是 IANA 时区（例如 Asia/Shanghai）
cal-week-start = reports.week_start = 「{ $value }」不是星期几（例如 monday）
cal-moment = 时间「{ $value }」：可写 2026-11-03（当天结束时）、2026-11-03 09:00（{ $zone } 当地时间）或 2026-11-03T09:00:00+08:00（RFC 3339）
cal-years = 时间「{ $value }」：年份应在 1970 到 9999 之间
cal-skipped = 时间「{ $value }」在 { $zone } 不存在（时钟调整）
cal-period = 期间「{ $value }」：可写 2026-11（月）、2026-Q4（季度）、2026-11-23（日）或 2026-11-23..2026-11-29（连续多日，含首尾）
cal-period-years = 期间「{ $value }」：年份应在 1970 到 9999 之间
cal-period-backwards = 期间「{ $value }」的结束早于开始

## 命令行

report-xlsx-needs-out = --format xlsx 需要用 -o 指定输出文件
cli-error-joint = ：
cli-audit-chain-broken = 审计日志的哈希链在第 { $at } 条断开
cli-people-crs = --crs 只用于网格和检查点导入；人员文件没有坐标
cli-template-unpublished = 模板 { $id } 尚未发布
cli-template-version-unpublished = 模板 { $id } 第 { $version } 版尚未发布
cli-not-hazard-id = 「{ $id }」不是隐患编号（设备上显示的 UUID）
cli-no-hazard = 本服务器上没有隐患 { $hazard }
cli-opening-database = 打开数据库 { $url } 时
cli-as-of-future = --as-of「{ $value }」（{ $at }）在将来（现在是 { $now }）：报表只能截至已经过去的时刻

## 命令行参数错误

clap-value = 参数 { $arg } 的值「{ $value }」无效：{ $why }
clap-choice = 参数 { $arg } 的值「{ $value }」无效，可选：{ $known }
clap-unknown-argument = 不认识的参数 { $arg }
clap-unknown-command = 不认识的命令 { $command }
clap-missing = 缺少必需的参数：{ $args }
clap-conflict = 参数 { $arg } 不能与 { $prior } 同时使用
clap-value-count = 参数 { $arg } 的值的个数不对
clap-suggest = 相近的有：{ $similar }
clap-usage = 用法：{ $usage }
clap-help = 更多信息请运行 --help

## 设备端命令行

dev-hazard-not-here = 本机没有隐患 { $id }（不在您负责的网格内，或尚未同步）
dev-opening-state = 打开 { $dir } 中的本机数据时
dev-bad-deadline = 「{ $value }」既不是时长（7d、48h）也不是日期（2026-12-31）
dev-bad-sha256 = 「{ $value }」不是 SHA-256 校验值（64 位十六进制）

## 管理接口（控制台会显示）

admin-token-missing = 缺少管理令牌：请发送 Authorization: Bearer <令牌>（数据目录中的 admin.token，或 `patrolsync admin admins add` 输出的令牌）
admin-token-unknown = 管理令牌无效：请发送 Authorization: Bearer <令牌>（数据目录中的 admin.token，或 `patrolsync admin admins add` 输出的令牌）
admin-token-revoked = 管理员 { $admin } 的令牌已于 { $at } 吊销
admin-token-expired = 管理员 { $admin } 的令牌已于 { $at } 过期；所有者（owner）可以签发新令牌
admin-needs-role = 管理员 { $admin } 的角色是 { $role }；{ $what ->
    [revoke_device] 停用设备
    [audit_log] 查看审计日志
    [admins] 查看管理员列表
   *[other] { $what }
}需要 { $needed } 或更高的角色
admin-whole-server = 管理员 { $admin } 只能查看 { $cell }；{ $what ->
    [store_counts] 存储统计
    [node_series] 本节点的趋势数据
    [audit_log] 审计日志
    [admins] 管理员账号
   *[other] { $what }
}涉及整个服务器
admin-outside = 管理员 { $admin } 只能查看 { $cell }，不能查看 { $asked }
admin-no-device-in = { $cell } 范围内没有设备 { $device }

## 启动服务器

serve-store = 无法打开数据库：{ $error }
serve-pki = 无法准备密钥和证书：{ $error }
serve-tls = TLS 出错：{ $error }
serve-photos = 无法打开照片存储：{ $error }
serve-bind = 无法监听 { $addr }：{ $error }
admin-period-required = 需要指定期间，例如 ?period=2026-11
admin-as-of-future = as_of「{ $value }」在将来

## 隐患直报路由规则（admin routing import）
routing-too-many = { $file }：共 { $count } 条规则；一套规则最多 { $limit } 条
routing-too-many-reminders = { $file }：截止时间{ $which ->
    [before] 前
   *[other] 后
}的督促有 { $count } 个；最多 { $limit } 个
routing-bad-reminder = { $file }：截止时间{ $which ->
    [before] 前
   *[other] 后
}的督促 { $value } 不是一年以内的时长（如 "2h"、"1d"、"0s"）
routing-rule-value = { $file }：第 { $n } 条规则：{ $field } 的值 { $value } 不在以下范围内：{ $known }
routing-rule-party = { $file }：第 { $n } 条规则必须且只能指定一个责任方：user = "…"、agency = "…" 或 unit = true
routing-unknown-cell = 第 { $n } 条规则：网格 { $cell } 不存在
routing-retired-cell = 第 { $n } 条规则：网格 { $cell } 已撤销
routing-unknown-user = 第 { $n } 条规则：用户 { $user } 不存在
routing-user-role = 第 { $n } 条规则：用户 { $user } 的角色是 { $role }；规则只能路由到物业（property_company）或社区（community）用户（派出所、消防请用 agency = "…"）
