//! The demo city: 2 streets × 3 communities × 4 compounds × 5 buildings, each building with two
//! checkpoints, laid out on a grid of positions around Harbin (南岗区-style names; the codes
//! stay `S1-C1-K1-B1-P1`). Seeding twice changes nothing. `--size city` builds a synthetic
//! city at Harbin's scale instead (see [`city_grid`]).

/// The demo's streets, and each street's communities.
const STREETS: [(&str, [&str; 3]); 2] = [
    ("花园街道", ["文化社区", "先锋社区", "红军社区"]),
    ("大成街道", ["大成社区", "龙江社区", "芦家社区"]),
];

/// The demo's compounds in each community.
const COMPOUNDS: [&str; 4] = ["阳光家园", "和平小区", "幸福里", "康乐苑"];

use crate::store::{NewCell, NewCheckpoint, Store, StoreError};

/// A box of latitude and longitude: (south, west, north, east).
type Bounds = (f64, f64, f64, f64);

/// The box as GeoJSON Polygon text, as imports store boundaries.
fn polygon((south, west, north, east): Bounds) -> String {
    let ring = vec![
        vec![west, south],
        vec![east, south],
        vec![east, north],
        vec![west, north],
        vec![west, south],
    ];
    geojson::Geometry::new(geojson::Value::Polygon(vec![ring])).to_string()
}

/// The smallest box holding both.
fn union(a: Option<Bounds>, b: Bounds) -> Bounds {
    match a {
        None => b,
        Some(a) => (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3)),
    }
}

/// Cells and checkpoints of the demo city.
pub fn demo_grid() -> (Vec<NewCell>, Vec<NewCheckpoint>) {
    let mut cells = Vec::new();
    let mut checkpoints = Vec::new();
    // Each compound is a row of latitude (`s * 12 + c * 4 + k` thousandths of a degree above
    // 45.75 N), each building two checkpoint columns of it: the boxes nest and hold their
    // checkpoints.
    let lat = |row: f64| 45.75 + row * 0.001;
    let lon = |column: f64| 126.65 + column * 0.0013;
    let rows =
        |s: u32, first: u32, last: u32| (f64::from(s * 12 + first), f64::from(s * 12 + last));
    for s in 1..=2 {
        let street = format!("S{s}");
        let (first, last) = rows(s, 5, 16);
        cells.push(NewCell {
            boundary: Some(polygon((
                lat(first - 0.5),
                lon(2.5),
                lat(last + 0.5),
                lon(12.5),
            ))),
            code: street.clone(),
            parent: None,
            level: 1,
            name: STREETS[s as usize - 1].0.into(),
        });
        for c in 1..=3 {
            let community = format!("{street}-C{c}");
            let (first, last) = rows(s, c * 4 + 1, c * 4 + 4);
            cells.push(NewCell {
                boundary: Some(polygon((
                    lat(first - 0.5),
                    lon(2.5),
                    lat(last + 0.5),
                    lon(12.5),
                ))),
                code: community.clone(),
                parent: Some(street.clone()),
                level: 2,
                name: STREETS[s as usize - 1].1[c as usize - 1].into(),
            });
            for k in 1..=4 {
                let compound = format!("{community}-K{k}");
                let row = f64::from(s * 12 + c * 4 + k);
                cells.push(NewCell {
                    boundary: Some(polygon((
                        lat(row - 0.5),
                        lon(2.5),
                        lat(row + 0.5),
                        lon(12.5),
                    ))),
                    code: compound.clone(),
                    parent: Some(community.clone()),
                    level: 3,
                    name: COMPOUNDS[k as usize - 1].into(),
                });
                for b in 1..=5 {
                    let building = format!("{compound}-B{b}");
                    let column = f64::from(b * 2);
                    cells.push(NewCell {
                        boundary: Some(polygon((
                            lat(row - 0.5),
                            lon(column + 0.5),
                            lat(row + 0.5),
                            lon(column + 2.5),
                        ))),
                        code: building.clone(),
                        parent: Some(compound.clone()),
                        level: 4,
                        name: format!("{b}号楼"),
                    });
                    for p in 1..=2 {
                        // ~100 m apart, around 45.75 N 126.65 E.
                        let lat = 45.75 + f64::from(s * 12 + c * 4 + k) * 0.001;
                        let lon = 126.65 + f64::from(b * 2 + p) * 0.0013;
                        checkpoints.push(NewCheckpoint {
                            cadence: None,
                            code: format!("{building}-P{p}"),
                            cell: building.clone(),
                            name: if p == 1 {
                                "单元入口及消防车通道".into()
                            } else {
                                "楼梯间灭火器".into()
                            },
                            tag_uid: Some(format!("TAG-{building}-P{p}")),
                            position: Some((lat, lon)),
                            radius_m: 50.0,
                        });
                    }
                }
            }
        }
    }
    (cells, checkpoints)
}

/// Seeds the demo city; returns (cells, checkpoints, rows changed).
pub async fn seed_demo(store: &dyn Store) -> Result<(usize, usize, u64), StoreError> {
    let (cells, checkpoints) = demo_grid();
    let changed = store
        .upsert_grid(&cells, &checkpoints, crate::clock::now_ms())
        .await?;
    Ok((cells.len(), checkpoints.len(), changed))
}

/// Cells per level of the synthetic city (streets, communities, compounds, buildings) and its
/// checkpoints: Harbin's scale.
pub const CITY: [usize; 5] = [115, 684, 3_765, 11_235, 40_000];

/// Splits `n` children over `parents` as evenly as possible: how many parent `i` gets.
fn share(n: usize, parents: usize, i: usize) -> usize {
    n * (i + 1) / parents - n * i / parents
}

/// A synthetic city of [`CITY`]'s size: streets `S001`…`S115`, then `-C1`…, `-K1`…, `-B1`…,
/// and checkpoints `-P1`… spread as evenly as the counts allow, positioned around Harbin.
pub fn city_grid() -> (Vec<NewCell>, Vec<NewCheckpoint>) {
    let [streets, communities, compounds, buildings, points] = CITY;
    let mut cells = Vec::with_capacity(streets + communities + compounds + buildings);
    let mut checkpoints = Vec::with_capacity(points);
    let (mut ci, mut ki, mut bi) = (0, 0, 0);
    // Buildings are boxes on a lattice; a compound, community or street is the box around its
    // buildings (a synthetic city: boxes of neighbours may overlap where a row wraps).
    let building_box = |bi: usize| -> Bounds {
        let (row, column) = ((bi / 120) as f64, (bi % 120) as f64);
        let (south, west) = (45.60 + row * 0.0003, 126.50 + column * 0.0004);
        (
            south - 0.00003,
            west - 0.00015,
            south + 0.00027,
            west + 0.00015,
        )
    };
    for s in 0..streets {
        let street = format!("S{:03}", s + 1);
        let street_at = cells.len();
        let mut street_box = None;
        cells.push(NewCell {
            boundary: None,
            code: street.clone(),
            parent: None,
            level: 1,
            name: format!("第{}街道", s + 1),
        });
        for c in 0..share(communities, streets, s) {
            let community = format!("{street}-C{}", c + 1);
            let community_at = cells.len();
            let mut community_box = None;
            cells.push(NewCell {
                boundary: None,
                code: community.clone(),
                parent: Some(street.clone()),
                level: 2,
                name: format!("第{}社区", ci + 1),
            });
            for k in 0..share(compounds, communities, ci) {
                let compound = format!("{community}-K{}", k + 1);
                let compound_at = cells.len();
                let mut compound_box = None;
                cells.push(NewCell {
                    boundary: None,
                    code: compound.clone(),
                    parent: Some(community.clone()),
                    level: 3,
                    name: format!("第{}小区", ki + 1),
                });
                for b in 0..share(buildings, compounds, ki) {
                    let building = format!("{compound}-B{}", b + 1);
                    compound_box = Some(union(compound_box, building_box(bi)));
                    cells.push(NewCell {
                        boundary: Some(polygon(building_box(bi))),
                        code: building.clone(),
                        parent: Some(compound.clone()),
                        level: 4,
                        name: format!("{}号楼", bi + 1),
                    });
                    for p in 0..share(points, buildings, bi) {
                        // Buildings on a ~30 m lattice over the city, checkpoints beside them.
                        let lat = 45.60 + (bi / 120) as f64 * 0.0003 + p as f64 * 0.00005;
                        let lon = 126.50 + (bi % 120) as f64 * 0.0004;
                        checkpoints.push(NewCheckpoint {
                            cadence: None,
                            code: format!("{building}-P{}", p + 1),
                            cell: building.clone(),
                            name: format!("{}号检查点", p + 1),
                            tag_uid: Some(format!("TAG-{building}-P{}", p + 1)),
                            position: Some((lat, lon)),
                            radius_m: 50.0,
                        });
                    }
                    bi += 1;
                }
                if let Some(b) = compound_box {
                    cells[compound_at].boundary = Some(polygon(b));
                    community_box = Some(union(community_box, b));
                }
                ki += 1;
            }
            if let Some(b) = community_box {
                cells[community_at].boundary = Some(polygon(b));
                street_box = Some(union(street_box, b));
            }
            ci += 1;
        }
        if let Some(b) = street_box {
            cells[street_at].boundary = Some(polygon(b));
        }
    }
    (cells, checkpoints)
}

/// Seeds the synthetic city; returns (cells, checkpoints, rows changed).
pub async fn seed_city(store: &dyn Store) -> Result<(usize, usize, u64), StoreError> {
    let (cells, checkpoints) = city_grid();
    let changed = store
        .upsert_grid(&cells, &checkpoints, crate::clock::now_ms())
        .await?;
    Ok((cells.len(), checkpoints.len(), changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_has_harbins_counts_per_level() {
        let (cells, checkpoints) = city_grid();
        let per_level: Vec<usize> = (1..=4)
            .map(|l| cells.iter().filter(|c| c.level == l).count())
            .collect();
        assert_eq!(per_level, CITY[..4].to_vec());
        assert_eq!(checkpoints.len(), CITY[4]);
        let mut codes: Vec<&str> = checkpoints.iter().map(|c| c.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CITY[4], "checkpoint codes are unique");
    }

    #[test]
    fn the_demo_city_is_named_in_chinese_with_its_codes_kept() {
        let (cells, checkpoints) = demo_grid();
        let name = |code: &str| {
            cells
                .iter()
                .find(|c| c.code == code)
                .map(|c| c.name.as_str())
                .unwrap_or_default()
        };
        assert_eq!(name("S1"), "花园街道");
        assert_eq!(name("S2-C3"), "芦家社区");
        assert_eq!(name("S1-C1-K2"), "和平小区");
        assert_eq!(name("S1-C1-K2-B5"), "5号楼");
        assert_eq!(checkpoints[0].code, "S1-C1-K1-B1-P1");
        assert_eq!(checkpoints[0].name, "单元入口及消防车通道");
        assert!(
            cells
                .iter()
                .all(|c| !c.name.is_empty() && !c.name.is_ascii()),
            "every name is Chinese"
        );
    }
}
