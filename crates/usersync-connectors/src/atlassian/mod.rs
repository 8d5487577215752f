//! Atlassian Data Center targets (being written).
