//! Posts and votes: people write posts, change or delete only their own, and vote once per post.

use gatehouse_proto::openapi::BearerSecurity;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_sdk::{Authenticated, Policy, TokenVerifier, require};
use serde::{Deserialize, Serialize};

use gatehouse_token::now_unix;

use crate::SERVICE_RESPONSES;
use crate::common::{AppError, Body, Db, new_id, person, rfc3339};

const MAX_CONTENT_CHARS: usize = 5_000;
const MAX_PER_PAGE: i64 = 100;

#[derive(Clone)]
pub struct PostsState {
    db: Db,
    verifier: Arc<TokenVerifier>,
}

impl FromRef<PostsState> for Arc<TokenVerifier> {
    fn from_ref(state: &PostsState) -> Self {
        state.verifier.clone()
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostContent {
    pub content: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Post {
    pub id: String,
    pub owner: String,
    pub content: String,
    pub votes: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostPage {
    pub items: Vec<Post>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VoteCount {
    pub post_id: String,
    pub votes: i64,
}

fn content(text: &str) -> Result<String, AppError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_CONTENT_CHARS {
        return Err(AppError::BadRequest(format!(
            "content must be 1 to {MAX_CONTENT_CHARS} characters"
        )));
    }
    Ok(trimmed.to_owned())
}

const POST_COLUMNS: &str = "SELECT p.id, p.owner, p.content, p.created_at, p.updated_at, \
     (SELECT COUNT(*) FROM posts_votes v WHERE v.post_id = p.id) FROM posts_posts p";

type PostRow = (String, String, String, i64, i64, i64);

fn to_post((id, owner, content, created_at, updated_at, votes): PostRow) -> Post {
    Post {
        id,
        owner,
        content,
        votes,
        created_at: rfc3339(created_at),
        updated_at: rfc3339(updated_at),
    }
}

async fn find(db: &Db, id: &str) -> Result<Post, AppError> {
    let row: Option<PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{POST_COLUMNS} WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(to_post)
        .ok_or_else(|| AppError::NotFound(format!("no post {id}")))
}

/// The post, if `caller` owns it: 404 when there is none, 403 when it is someone else's.
async fn owned(db: &Db, id: &str, caller: &str) -> Result<Post, AppError> {
    let post = find(db, id).await?;
    if post.owner != caller {
        return Err(AppError::Forbidden(
            "only the author may change a post".into(),
        ));
    }
    Ok(post)
}

#[utoipa::path(post, path = "/api/posts", tag = "posts", request_body = PostContent,
    responses((status = 201, body = Post), (status = 400)), security(("bearer" = ["posts"])))]
async fn create(
    State(state): State<PostsState>,
    caller: Authenticated,
    Body(new): Body<PostContent>,
) -> Result<(StatusCode, Json<Post>), AppError> {
    let owner = person(&caller)?;
    let text = content(&new.content)?;
    let id = new_id("post")?;
    let now = now_unix();
    sqlx::query(
        "INSERT INTO posts_posts (id, owner, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&id)
    .bind(owner)
    .bind(&text)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    Ok((StatusCode::CREATED, Json(find(&state.db, &id).await?)))
}

/// The caller's posts, newest first, with their vote counts.
#[utoipa::path(get, path = "/api/posts", tag = "posts",
    params(("page" = Option<i64>, Query), ("per_page" = Option<i64>, Query)),
    responses((status = 200, body = PostPage), (status = 400)), security(("bearer" = ["posts"])))]
async fn list(
    State(state): State<PostsState>,
    caller: Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<PostPage>, AppError> {
    let owner = person(&caller)?;
    let number = |name: &str, default: i64, max: i64| match query.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| AppError::BadRequest(format!("{name} must be from 1 to {max}"))),
    };
    let page = number("page", 1, 1_000_000)?;
    let per_page = number("per_page", 20, MAX_PER_PAGE)?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts_posts WHERE owner = $1")
        .bind(owner)
        .fetch_one(&state.db.pool)
        .await?;
    let rows: Vec<PostRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{POST_COLUMNS} WHERE p.owner = $1 ORDER BY p.created_at DESC, p.id LIMIT $2 OFFSET $3"
    )))
    .bind(owner)
    .bind(per_page)
    .bind((page - 1) * per_page)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(PostPage {
        items: rows.into_iter().map(to_post).collect(),
        page,
        per_page,
        total,
    }))
}

#[utoipa::path(get, path = "/api/posts/{id}", tag = "posts", params(("id" = String, Path)),
    responses((status = 200, body = Post), (status = 404)), security(("bearer" = ["posts"])))]
async fn one(
    State(state): State<PostsState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Post>, AppError> {
    person(&caller)?;
    Ok(Json(find(&state.db, &id).await?))
}

#[utoipa::path(put, path = "/api/posts/{id}", tag = "posts", params(("id" = String, Path)),
    request_body = PostContent,
    responses((status = 200, body = Post), (status = 403), (status = 404)),
    security(("bearer" = ["posts"])))]
async fn update(
    State(state): State<PostsState>,
    caller: Authenticated,
    Path(id): Path<String>,
    Body(change): Body<PostContent>,
) -> Result<Json<Post>, AppError> {
    let owner = person(&caller)?;
    owned(&state.db, &id, owner).await?;
    let text = content(&change.content)?;
    sqlx::query(
        "UPDATE posts_posts SET content = $1, updated_at = $2 WHERE id = $3 AND owner = $4",
    )
    .bind(&text)
    .bind(now_unix())
    .bind(&id)
    .bind(owner)
    .execute(&state.db.pool)
    .await?;
    Ok(Json(find(&state.db, &id).await?))
}

#[utoipa::path(delete, path = "/api/posts/{id}", tag = "posts", params(("id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = ["posts"])))]
async fn remove(
    State(state): State<PostsState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let owner = person(&caller)?;
    owned(&state.db, &id, owner).await?;
    sqlx::query("DELETE FROM posts_posts WHERE id = $1 AND owner = $2")
        .bind(&id)
        .bind(owner)
        .execute(&state.db.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One vote per person per post; a second is 409.
#[utoipa::path(post, path = "/api/posts/{id}/vote", tag = "posts", params(("id" = String, Path)),
    responses((status = 201, body = VoteCount), (status = 404), (status = 409)),
    security(("bearer" = ["posts"])))]
async fn vote(
    State(state): State<PostsState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<VoteCount>), AppError> {
    let voter = person(&caller)?;
    find(&state.db, &id).await?;
    let inserted = sqlx::query(
        "INSERT INTO posts_votes (post_id, voter, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(voter)
    .bind(now_unix())
    .execute(&state.db.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AppError::Conflict(
            "you have voted for this post already".into(),
        ));
    }
    let post = find(&state.db, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(VoteCount {
            post_id: post.id,
            votes: post.votes,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/posts/{id}/vote", tag = "posts", params(("id" = String, Path)),
    responses((status = 204), (status = 404)), security(("bearer" = ["posts"])))]
async fn unvote(
    State(state): State<PostsState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let voter = person(&caller)?;
    find(&state.db, &id).await?;
    let deleted = sqlx::query("DELETE FROM posts_votes WHERE post_id = $1 AND voter = $2")
        .bind(&id)
        .bind(voter)
        .execute(&state.db.pool)
        .await?;
    match deleted.rows_affected() {
        0 => Err(AppError::NotFound(
            "you have not voted for this post".into(),
        )),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gatehouse posts", description = "Posts and votes; needs a person's token with the posts scope."),
    paths(create, list, one, update, remove, vote, unvote),
    components(schemas(PostContent, Post, PostPage, VoteCount)),
    modifiers(&BearerSecurity, &SERVICE_RESPONSES)
)]
pub struct Doc;

pub async fn router(db: Db, verifier: Arc<TokenVerifier>) -> Result<Router, AppError> {
    db.migrate("posts", sqlx::migrate!("migrations/posts"))
        .await?;
    let guard = require(verifier.clone(), Policy::scopes(["posts"]));
    Ok(Router::new()
        .route(
            "/api/posts",
            get(list).post(create).route_layer(guard.clone()),
        )
        .route(
            "/api/posts/{id}",
            get(one)
                .put(update)
                .delete(remove)
                .route_layer(guard.clone()),
        )
        .route(
            "/api/posts/{id}/vote",
            post(vote).delete(unvote).route_layer(guard),
        )
        .route("/api/posts/openapi.json", get(crate::openapi::<Doc>))
        .with_state(PostsState { db, verifier }))
}
