//! The demo city: 2 streets × 3 communities × 4 compounds × 5 buildings, each building with two
//! checkpoints, laid out on a grid of positions around Harbin. Seeding twice changes nothing.

use crate::store::{NewCell, NewCheckpoint, Store, StoreError};

/// Cells and checkpoints of the demo city.
pub fn demo_grid() -> (Vec<NewCell>, Vec<NewCheckpoint>) {
    let mut cells = Vec::new();
    let mut checkpoints = Vec::new();
    for s in 1..=2 {
        let street = format!("S{s}");
        cells.push(NewCell {
            code: street.clone(),
            parent: None,
            level: 1,
            name: format!("Street {s}"),
        });
        for c in 1..=3 {
            let community = format!("{street}-C{c}");
            cells.push(NewCell {
                code: community.clone(),
                parent: Some(street.clone()),
                level: 2,
                name: format!("Community {s}.{c}"),
            });
            for k in 1..=4 {
                let compound = format!("{community}-K{k}");
                cells.push(NewCell {
                    code: compound.clone(),
                    parent: Some(community.clone()),
                    level: 3,
                    name: format!("Compound {s}.{c}.{k}"),
                });
                for b in 1..=5 {
                    let building = format!("{compound}-B{b}");
                    cells.push(NewCell {
                        code: building.clone(),
                        parent: Some(compound.clone()),
                        level: 4,
                        name: format!("Building {s}.{c}.{k}.{b}"),
                    });
                    for p in 1..=2 {
                        // ~100 m apart, around 45.75 N 126.65 E.
                        let lat = 45.75 + f64::from(s * 12 + c * 4 + k) * 0.001;
                        let lon = 126.65 + f64::from(b * 2 + p) * 0.0013;
                        checkpoints.push(NewCheckpoint {
                            code: format!("{building}-P{p}"),
                            cell: building.clone(),
                            name: if p == 1 {
                                "Entrance and fire lane".into()
                            } else {
                                "Stairwell extinguishers".into()
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
    let changed = store.upsert_grid(&cells, &checkpoints).await?;
    Ok((cells.len(), checkpoints.len(), changed))
}
