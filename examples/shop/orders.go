package shop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ordersv1 "github.com/edgegate/edgegate/gen/shop/orders/v1"
)

// MaxQuantity is the most copies of one book an order may hold.
const MaxQuantity = 10

// Orders is the in-memory OrdersService. Its methods are safe for
// concurrent use.
type Orders struct {
	ordersv1.UnimplementedOrdersServiceServer
	// TrackInterval is the pause between the states TrackOrder sends.
	TrackInterval time.Duration

	mu     sync.Mutex
	orders map[string]*ordersv1.Order
	nextID int
}

// NewOrders returns an empty orders service.
func NewOrders() *Orders {
	return &Orders{orders: map[string]*ordersv1.Order{}, TrackInterval: 100 * time.Millisecond}
}

// checkItems returns INVALID_ARGUMENT with google.rpc.BadRequest for a
// malformed item, and FAILED_PRECONDITION with PreconditionFailure and
// ErrorInfo details for a quantity over MaxQuantity.
func checkItems(field string, items []*ordersv1.LineItem) error {
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkBookName(f+".book", it.GetBook()); err != nil {
			return err
		}
		if it.GetQuantity() <= 0 {
			return badRequest(f+".quantity", "must be positive")
		}
		if it.GetQuantity() > MaxQuantity {
			st, _ := status.New(codes.FailedPrecondition, fmt.Sprintf("quantity %d of %s is over the limit of %d", it.GetQuantity(), it.GetBook(), MaxQuantity)).WithDetails(
				&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
					Type: "QUANTITY", Subject: it.GetBook(), Description: fmt.Sprintf("at most %d copies per order", MaxQuantity),
				}}},
				&errdetails.ErrorInfo{Reason: "QUANTITY_LIMIT", Domain: "shop.example", Metadata: map[string]string{"limit": strconv.Itoa(MaxQuantity)}},
			)
			return st.Err()
		}
	}
	return nil
}

// CreateOrder places an order.
func (o *Orders) CreateOrder(_ context.Context, req *ordersv1.CreateOrderRequest) (*ordersv1.Order, error) {
	if req.GetUserId() == "" {
		return nil, badRequest("user_id", "required")
	}
	if len(req.GetItems()) == 0 {
		return nil, badRequest("items", "an order needs at least one item")
	}
	if err := checkItems("items", req.GetItems()); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nextID++
	ord := &ordersv1.Order{
		OrderId:    "o-" + strconv.Itoa(o.nextID),
		UserId:     req.GetUserId(),
		Items:      req.GetItems(),
		CreateTime: timestamppb.Now(),
	}
	o.orders[ord.GetOrderId()] = ord
	return proto.CloneOf(ord), nil
}

// GetOrder returns one order.
func (o *Orders) GetOrder(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ord, ok := o.orders[req.GetOrderId()]
	if !ok {
		return nil, notFound("order", req.GetOrderId())
	}
	return proto.CloneOf(ord), nil
}

// ListOrders lists the orders of one user, newest first: at most
// page_size (default 10).
func (o *Orders) ListOrders(_ context.Context, req *ordersv1.ListOrdersRequest) (*ordersv1.ListOrdersResponse, error) {
	if req.GetUserId() == "" {
		return nil, badRequest("user_id", "required")
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 10
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*ordersv1.Order
	for _, ord := range o.orders {
		if ord.GetUserId() == req.GetUserId() {
			out = append(out, proto.CloneOf(ord))
		}
	}
	slices.SortFunc(out, func(a, b *ordersv1.Order) int { return orderNumber(b) - orderNumber(a) })
	if len(out) > size {
		out = out[:size]
	}
	return &ordersv1.ListOrdersResponse{Orders: out}, nil
}

// orderNumber is the N of an order id "o-N".
func orderNumber(o *ordersv1.Order) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(o.GetOrderId(), "o-"))
	return n
}

// UploadLineItems adds the streamed items to the order named by the first
// message; nothing is added unless every item is valid.
func (o *Orders) UploadLineItems(stream grpc.ClientStreamingServer[ordersv1.UploadLineItemsRequest, ordersv1.UploadLineItemsResponse]) error {
	var (
		id    string
		items []*ordersv1.LineItem
	)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if id == "" {
			id = req.GetOrderId()
		}
		items = append(items, req.GetItem())
	}
	if id == "" {
		return badRequest("order_id", "the first message must name the order")
	}
	if err := checkItems("item", items); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ord, ok := o.orders[id]
	if !ok {
		return notFound("order", id)
	}
	ord.Items = append(ord.Items, items...)
	return stream.SendAndClose(&ordersv1.UploadLineItemsResponse{Order: proto.CloneOf(ord), ItemsAdded: int32(len(items))})
}

// TrackOrder streams the order's states from placed to delivered.
func (o *Orders) TrackOrder(req *ordersv1.TrackOrderRequest, stream grpc.ServerStreamingServer[ordersv1.TrackOrderResponse]) error {
	o.mu.Lock()
	_, ok := o.orders[req.GetOrderId()]
	o.mu.Unlock()
	if !ok {
		return notFound("order", req.GetOrderId())
	}
	states := []ordersv1.TrackOrderResponse_State{
		ordersv1.TrackOrderResponse_STATE_PLACED,
		ordersv1.TrackOrderResponse_STATE_PACKED,
		ordersv1.TrackOrderResponse_STATE_SHIPPED,
		ordersv1.TrackOrderResponse_STATE_DELIVERED,
	}
	for i, s := range states {
		if i > 0 {
			select {
			case <-time.After(o.TrackInterval):
			case <-stream.Context().Done():
				return status.FromContextError(stream.Context().Err()).Err()
			}
		}
		if err := stream.Send(&ordersv1.TrackOrderResponse{State: s, Time: timestamppb.Now()}); err != nil {
			return err
		}
	}
	return nil
}
