//! Microsoft Graph source connector (being written).
