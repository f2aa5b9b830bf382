//! Field rules for people's accounts, shared by signup and the admin API.

use crate::{ApiError, FieldError};

pub const USERNAME_MAX: usize = 64;
pub const EMAIL_MAX: usize = 254;
pub const PASSWORD_MIN: usize = 8;
/// Bounded so a huge password cannot make hashing expensive.
pub const PASSWORD_MAX: usize = 1024;

pub fn username(value: &str, errors: &mut Vec<FieldError>) {
    let problem = if value.is_empty() {
        Some("must not be empty")
    } else if value.chars().count() > USERNAME_MAX {
        Some("must be at most 64 characters")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        Some("may contain only letters, digits and . _ - @")
    } else {
        None
    };
    if let Some(detail) = problem {
        errors.push(FieldError {
            field: "username",
            detail: detail.into(),
        });
    }
}

pub fn email(value: &str, errors: &mut Vec<FieldError>) {
    let well_formed = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    let problem = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > EMAIL_MAX {
        Some("must be at most 254 characters")
    } else if !well_formed {
        Some("must be an email address such as name@example.com")
    } else {
        None
    };
    if let Some(detail) = problem {
        errors.push(FieldError {
            field: "email",
            detail: detail.into(),
        });
    }
}

pub fn password(field: &'static str, value: &str, errors: &mut Vec<FieldError>) {
    let count = value.chars().count();
    let problem = if count < PASSWORD_MIN {
        Some("must be at least 8 characters")
    } else if value.len() > PASSWORD_MAX {
        Some("must be at most 1024 bytes")
    } else {
        None
    };
    if let Some(detail) = problem {
        errors.push(FieldError {
            field,
            detail: detail.into(),
        });
    }
}

pub fn finish(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl Fn(&mut Vec<FieldError>)) -> Vec<&'static str> {
        let mut errors = Vec::new();
        f(&mut errors);
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn usernames() {
        assert!(check(|e| username("alice.b-1", e)).is_empty());
        assert_eq!(check(|e| username("", e)), ["username"]);
        assert_eq!(check(|e| username("a b", e)), ["username"]);
        assert_eq!(check(|e| username(&"x".repeat(65), e)), ["username"]);
    }

    #[test]
    fn emails() {
        assert!(check(|e| email("a@example.com", e)).is_empty());
        for bad in ["", "a", "a@", "@b.c", "a@b", "a@@b.c", "a b@c.d", "a@.c"] {
            assert_eq!(check(|e| email(bad, e)), ["email"], "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check(|e| password("password", "12345678", e)).is_empty());
        assert_eq!(check(|e| password("password", "1234567", e)), ["password"]);
        assert_eq!(
            check(|e| password("password", &"x".repeat(1025), e)),
            ["password"]
        );
    }
}
