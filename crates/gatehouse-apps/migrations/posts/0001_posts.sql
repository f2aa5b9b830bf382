CREATE TABLE posts_posts (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX posts_posts_owner ON posts_posts (owner, created_at);

CREATE TABLE posts_votes (
    post_id TEXT NOT NULL REFERENCES posts_posts (id) ON DELETE CASCADE,
    voter TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, voter)
);
