//! pmd (placeholder).
