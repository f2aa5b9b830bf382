CREATE TABLE orders_products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price TEXT NOT NULL,
    stock BIGINT NOT NULL CHECK (stock >= 0)
);

CREATE TABLE orders_orders (
    id TEXT PRIMARY KEY,
    buyer TEXT NOT NULL,
    status TEXT NOT NULL,
    total TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX orders_orders_buyer ON orders_orders (buyer, created_at);

CREATE TABLE orders_items (
    order_id TEXT NOT NULL REFERENCES orders_orders (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES orders_products (id),
    quantity BIGINT NOT NULL,
    unit_price TEXT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
