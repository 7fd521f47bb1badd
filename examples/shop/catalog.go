package shop

import (
	"context"
	"fmt"
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
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	catalogv1 "github.com/edgegate/edgegate/gen/shop/catalog/v1"
)

// Catalog is the in-memory CatalogService. Its methods are safe for
// concurrent use.
type Catalog struct {
	catalogv1.UnimplementedCatalogServiceServer

	mu       sync.Mutex
	books    map[string]*catalogv1.Book
	nextID   int
	watchers map[chan *catalogv1.WatchBooksResponse]string // → shelf
}

// NewCatalog returns a catalog with a few books on shelves/1 and shelves/2.
func NewCatalog() *Catalog {
	c := &Catalog{books: map[string]*catalogv1.Book{}, nextID: 100, watchers: map[chan *catalogv1.WatchBooksResponse]string{}}
	seed := []*catalogv1.Book{
		{Name: "shelves/1/books/1", Title: "The Left Hand of Darkness", Author: "Ursula K. Le Guin", Genre: catalogv1.Genre_GENRE_FICTION, PriceCents: 1299, Stock: 4, Tags: []string{"classic", "sf"}, PublishTime: ts(1969), ReadingTime: durationpb.New(9 * time.Hour)},
		{Name: "shelves/1/books/2", Title: "A Brief History of Time", Author: "Stephen Hawking", Genre: catalogv1.Genre_GENRE_SCIENCE, PriceCents: 1599, Stock: 2, Tags: []string{"physics"}, PublishTime: ts(1988), ReadingTime: durationpb.New(6 * time.Hour)},
		{Name: "shelves/2/books/3", Title: "SPQR", Author: "Mary Beard", Genre: catalogv1.Genre_GENRE_HISTORY, PriceCents: 1899, Stock: 7, Tags: []string{"rome", "classic"}, PublishTime: ts(2015), ReadingTime: durationpb.New(14 * time.Hour)},
	}
	for _, b := range seed {
		c.books[b.GetName()] = b
	}
	return c
}

func ts(year int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC))
}

func badRequest(field, desc string) error {
	st, _ := status.New(codes.InvalidArgument, fmt.Sprintf("invalid %s: %s", field, desc)).WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
	return st.Err()
}

func notFound(kind, name string) error {
	st, _ := status.New(codes.NotFound, fmt.Sprintf("%s %q not found", kind, name)).WithDetails(
		&errdetails.ResourceInfo{ResourceType: kind, ResourceName: name})
	return st.Err()
}

// checkBookName checks shelves/{shelf}/books/{book}.
func checkBookName(field, name string) error {
	p := strings.Split(name, "/")
	if len(p) != 4 || p[0] != "shelves" || p[2] != "books" || p[1] == "" || p[3] == "" {
		return badRequest(field, fmt.Sprintf("%q is not shelves/{shelf}/books/{book}", name))
	}
	return nil
}

func checkShelf(field, name string, allowEmpty bool) error {
	if name == "" && allowEmpty {
		return nil
	}
	p := strings.Split(name, "/")
	if len(p) != 2 || p[0] != "shelves" || p[1] == "" {
		return badRequest(field, fmt.Sprintf("%q is not shelves/{shelf}", name))
	}
	return nil
}

// GetBook returns one book.
func (c *Catalog) GetBook(_ context.Context, req *catalogv1.GetBookRequest) (*catalogv1.Book, error) {
	if err := checkBookName("name", req.GetName()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.books[req.GetName()]
	if !ok {
		return nil, notFound("book", req.GetName())
	}
	return proto.CloneOf(b), nil
}

// ListBooks lists books in name order, filtered, a page at a time.
func (c *Catalog) ListBooks(_ context.Context, req *catalogv1.ListBooksRequest) (*catalogv1.ListBooksResponse, error) {
	if err := checkShelf("parent", req.GetParent(), true); err != nil {
		return nil, err
	}
	if req.GetPageSize() < 0 {
		return nil, badRequest("page_size", "must not be negative")
	}
	offset := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, badRequest("page_token", "not a token this service issued")
		}
		offset = n
	}
	c.mu.Lock()
	var all []*catalogv1.Book
	for _, b := range c.books {
		if matches(b, req) {
			all = append(all, proto.CloneOf(b))
		}
	}
	c.mu.Unlock()
	slices.SortFunc(all, func(a, b *catalogv1.Book) int { return strings.Compare(a.GetName(), b.GetName()) })
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	resp := &catalogv1.ListBooksResponse{}
	if offset < len(all) {
		end := min(offset+size, len(all))
		resp.Books = all[offset:end]
		if end < len(all) {
			resp.NextPageToken = strconv.Itoa(end)
		}
	}
	return resp, nil
}

func matches(b *catalogv1.Book, req *catalogv1.ListBooksRequest) bool {
	if p := req.GetParent(); p != "" && !strings.HasPrefix(b.GetName(), p+"/") {
		return false
	}
	if g := req.GetGenre(); g != catalogv1.Genre_GENRE_UNSPECIFIED && b.GetGenre() != g {
		return false
	}
	for _, t := range req.GetTags() {
		if !slices.Contains(b.GetTags(), t) {
			return false
		}
	}
	if pa := req.GetPublishedAfter(); pa != nil && !b.GetPublishTime().AsTime().After(pa.AsTime()) {
		return false
	}
	if f := req.GetFilter(); f != nil {
		if f.GetAuthor() != "" && b.GetAuthor() != f.GetAuthor() {
			return false
		}
		if f.GetMaxPriceCents() > 0 && b.GetPriceCents() > f.GetMaxPriceCents() {
			return false
		}
	}
	return true
}

// CreateBook adds a book to a shelf.
func (c *Catalog) CreateBook(_ context.Context, req *catalogv1.CreateBookRequest) (*catalogv1.Book, error) {
	if err := checkShelf("parent", req.GetParent(), false); err != nil {
		return nil, err
	}
	if req.GetBook().GetTitle() == "" {
		return nil, badRequest("book.title", "required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := req.GetBookId()
	if id == "" {
		c.nextID++
		id = strconv.Itoa(c.nextID)
	}
	if strings.Contains(id, "/") {
		return nil, badRequest("book_id", "must not contain /")
	}
	b := proto.CloneOf(req.GetBook())
	b.Name = req.GetParent() + "/books/" + id
	if _, exists := c.books[b.GetName()]; exists {
		return nil, status.Errorf(codes.AlreadyExists, "book %q already exists", b.GetName())
	}
	c.books[b.GetName()] = b
	c.notify(catalogv1.WatchBooksResponse_KIND_CREATED, b)
	return proto.CloneOf(b), nil
}

// bookFields are the fields UpdateBook can change, by mask path.
var bookFields = map[string]func(dst, src *catalogv1.Book){
	"title":        func(d, s *catalogv1.Book) { d.Title = s.GetTitle() },
	"author":       func(d, s *catalogv1.Book) { d.Author = s.GetAuthor() },
	"genre":        func(d, s *catalogv1.Book) { d.Genre = s.GetGenre() },
	"price_cents":  func(d, s *catalogv1.Book) { d.PriceCents = s.GetPriceCents() },
	"stock":        func(d, s *catalogv1.Book) { d.Stock = s.GetStock() },
	"tags":         func(d, s *catalogv1.Book) { d.Tags = slices.Clone(s.GetTags()) },
	"publish_time": func(d, s *catalogv1.Book) { d.PublishTime = proto.CloneOf(s.GetPublishTime()) },
	"reading_time": func(d, s *catalogv1.Book) { d.ReadingTime = proto.CloneOf(s.GetReadingTime()) },
}

// UpdateBook changes the masked fields of a book; an empty mask changes
// every field that is set in the request.
func (c *Catalog) UpdateBook(_ context.Context, req *catalogv1.UpdateBookRequest) (*catalogv1.Book, error) {
	if err := checkBookName("book.name", req.GetBook().GetName()); err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		req.GetBook().ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if n := string(fd.Name()); n != "name" {
				paths = append(paths, n)
			}
			return true
		})
	}
	for _, p := range paths {
		if _, ok := bookFields[p]; !ok {
			return nil, badRequest("update_mask", fmt.Sprintf("unknown or read-only field %q", p))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.books[req.GetBook().GetName()]
	if !ok {
		return nil, notFound("book", req.GetBook().GetName())
	}
	b = proto.CloneOf(b)
	for _, p := range paths {
		bookFields[p](b, req.GetBook())
	}
	c.books[b.GetName()] = b
	c.notify(catalogv1.WatchBooksResponse_KIND_UPDATED, b)
	return proto.CloneOf(b), nil
}

// DeleteBook removes a book.
func (c *Catalog) DeleteBook(_ context.Context, req *catalogv1.DeleteBookRequest) (*catalogv1.DeleteBookResponse, error) {
	if err := checkBookName("name", req.GetName()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.books[req.GetName()]
	if !ok {
		return nil, notFound("book", req.GetName())
	}
	delete(c.books, req.GetName())
	c.notify(catalogv1.WatchBooksResponse_KIND_DELETED, b)
	return &catalogv1.DeleteBookResponse{Name: req.GetName()}, nil
}

// notify sends a change to the watchers of the book's shelf; c.mu is held.
// A watcher that does not keep up misses the event rather than blocking
// writers.
func (c *Catalog) notify(kind catalogv1.WatchBooksResponse_Kind, b *catalogv1.Book) {
	for ch, shelf := range c.watchers {
		if strings.HasPrefix(b.GetName(), shelf+"/") {
			select {
			case ch <- &catalogv1.WatchBooksResponse{Kind: kind, Book: proto.CloneOf(b)}:
			default:
			}
		}
	}
}

// WatchBooks sends the shelf's books, then every change, until max_events
// (when set) or until the client leaves.
func (c *Catalog) WatchBooks(req *catalogv1.WatchBooksRequest, stream grpc.ServerStreamingServer[catalogv1.WatchBooksResponse]) error {
	if err := checkShelf("parent", req.GetParent(), false); err != nil {
		return err
	}
	ch := make(chan *catalogv1.WatchBooksResponse, 64)
	c.mu.Lock()
	var existing []*catalogv1.Book
	for _, b := range c.books {
		if strings.HasPrefix(b.GetName(), req.GetParent()+"/") {
			existing = append(existing, proto.CloneOf(b))
		}
	}
	c.watchers[ch] = req.GetParent()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.watchers, ch)
		c.mu.Unlock()
	}()
	slices.SortFunc(existing, func(a, b *catalogv1.Book) int { return strings.Compare(a.GetName(), b.GetName()) })
	sent := 0
	limit := int(req.GetMaxEvents())
	send := func(ev *catalogv1.WatchBooksResponse) (bool, error) {
		if err := stream.Send(ev); err != nil {
			return true, err
		}
		sent++
		return limit > 0 && sent >= limit, nil
	}
	for _, b := range existing {
		if done, err := send(&catalogv1.WatchBooksResponse{Kind: catalogv1.WatchBooksResponse_KIND_EXISTING, Book: b}); done || err != nil {
			return err
		}
	}
	for {
		select {
		case ev := <-ch:
			if done, err := send(ev); done || err != nil {
				return err
			}
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		}
	}
}
